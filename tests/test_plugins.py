"""A method of your own, from outside the repository: Python function, model, program.

Each kind runs through the workflow from a folder outside the repository: one file beside
a config whose method takes at most 10 lines (bicubic + the method, smoke preset, one
adult test subject and one fetal stack thinned).  Bad plug-ins at parse time are rows of
tests/bad_input_workflow_cases.py; bad outputs in the job are tested here on the steps.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_snakemake

from rrlsrn import plugins
from rrlsrn.checkpoint import load_checkpoint, load_model
from rrlsrn.degrade import make_degradation

DATA = """\
results: out
datasets:
  embedded_adult:
    source: embedded
    subjects: [ds000011-sub-01, ds000011-sub-02, ds000011-sub-03]
    split: {ds000011-sub-01: train, ds000011-sub-02: val, ds000011-sub-03: test}
    slice_step: 8
  embedded_fetal: {source: embedded, collection: fetal, subjects: [sub-01_run-1], slice_step: 4}
training: {preset: smoke}
"""

PYTHON_MODULE = '''\
import torch.nn.functional as F


def upsample(lr, scale, degradation, steps=1):
    """Bilinear, then back-projection through the LR operator that made the input."""
    sr = F.interpolate(lr[:, None], scale_factor=scale, mode="bilinear")[:, 0]
    for _ in range(steps):
        sr = sr + degradation.adjoint(lr - degradation(sr, scale), scale)
    return sr
'''

PYTHON_METHOD = """\
methods: [bicubic, mine]
method_specs:
  mine:
    kind: python
    entrypoint: "my_sr:upsample"
    params: {steps: 2}
"""

MODEL_MODULE = '''\
from torch import nn


class MyNet(nn.Module):
    """Bicubic upsampling plus a learned 3-layer residual."""

    def __init__(self, scale, width=16):
        super().__init__()
        self.up = nn.Upsample(scale_factor=scale, mode="bicubic")
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 1, 3, padding=1),
        )

    def forward(self, x):
        x = self.up(x)
        return x + self.body(x)
'''

MODEL_METHOD = """\
methods: [bicubic, mine]
method_specs:
  mine:
    kind: learned
    model: "my_net:MyNet"
    model_args: {width: 8}
    train: {init: scratch}
"""

COMMAND_SCRIPT = '''\
"""my_sr.py INPUT OUTPUT --scale S: nearest-neighbour upsampling of a NIfTI volume."""
import argparse

import nibabel as nib
import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("input")
parser.add_argument("output")
parser.add_argument("--scale", type=int, default=2)
args = parser.parse_args()
lr = nib.load(args.input)
sr = np.asarray(lr.dataobj).repeat(args.scale, 0).repeat(args.scale, 1)
hr_grid = lr.affine @ np.diag([1 / args.scale, 1 / args.scale, 1, 1])
hr_grid[:2, 3] += lr.affine[:2, :2] @ np.full(2, (1 / args.scale - 1) / 2)
nib.save(nib.Nifti1Image(sr, hr_grid), args.output)
print(f"my_sr: {lr.shape} -> {sr.shape}")
'''

COMMAND_METHOD = """\
methods: [bicubic, mine]
method_specs:
  mine:
    kind: command
    command: "{python} my_sr.py {{input}} {{output}} --scale {{scale}}"
"""


def own_method_run(tmp_path: Path, module: str, code: str, method: str, *targets: str) -> Path:
    """Run the workflow from ``tmp_path`` on ``module`` beside a config with ``method``."""
    assert len(method.splitlines()) <= 10  # the target: one file and at most 10 lines
    (tmp_path / module).write_text(code)
    config = tmp_path / "config.yaml"
    config.write_text(DATA + method)
    args = ["--configfile", str(config), "--cores", "2", "--", *targets]
    run_snakemake(args, tmp_path)
    return tmp_path / "out"


def adult_psnr(out: Path, method: str) -> float:
    return pd.read_csv(out / f"x2/metrics/{method}/embedded_adult.tsv", sep="\t")["psnr"].mean()


@pytest.mark.slow
def test_a_python_function_of_your_own_runs_through_the_workflow(tmp_path):
    out = own_method_run(
        tmp_path, "my_sr.py", PYTHON_MODULE, PYTHON_METHOD, "out/x2/tables/table6_runtime.csv"
    )
    table = pd.read_csv(out / "x2/tables/table1to3_embedded_adult.csv", dtype=str)
    assert list(table.columns) == ["Statistic", "Metric", "Bicubic", "mine"]
    # back-projected bilinear: within a dB of bicubic, so it got the operator and params
    assert abs(adult_psnr(out, "mine") - adult_psnr(out, "bicubic")) < 1.5
    runtime = pd.read_csv(out / "x2/runtime/mine/embedded_fetal/sub-01_run-1.tsv", sep="\t")
    assert set(runtime["timing"]) == {"method"}


@pytest.mark.slow
def test_a_model_of_your_own_is_trained_and_evaluated_through_the_workflow(tmp_path):
    out = own_method_run(
        tmp_path, "my_net.py", MODEL_MODULE, MODEL_METHOD, "out/x2/metrics/mine/embedded_adult.tsv"
    )
    state = load_checkpoint(out / "x2/models/mine/best.pt")
    assert state["model_name"] == "my_net:MyNet"
    assert state["model_kwargs"] == {"width": 8, "scale": 2}
    assert state["fingerprint"]["model_code"].startswith("sha256:")
    with plugins.search_path([tmp_path]):
        model = load_model(out / "x2/models/mine/best.pt")
    assert type(model).__name__ == "MyNet"
    assert len(pd.read_csv(out / "x2/models/mine/train_log.csv")) == 2
    assert 20 < adult_psnr(out, "mine") < 60


@pytest.mark.slow
def test_an_external_program_runs_through_the_workflow_timed_from_outside(tmp_path):
    method = COMMAND_METHOD.format(python=sys.executable)
    out = own_method_run(
        tmp_path, "my_sr.py", COMMAND_SCRIPT, method, "out/x2/tables/table6_runtime.csv"
    )
    runtime = pd.read_csv(out / "x2/runtime/mine/embedded_adult/ds000011-sub-03.tsv", sep="\t")
    assert set(runtime["timing"]) == {"outside"} and (runtime["seconds"] > 0).all()
    assert set(runtime["device"]) == {"external program"}
    table = pd.read_csv(out / "x2/tables/table6_runtime.csv", dtype=str)
    own = table[table["Timing"] == "per slice (method only)"]
    assert own["mine"].str.endswith(" †").all() and not own["Bicubic"].str.contains("†").any()
    log = (out / "x2/logs/super_resolve/mine/embedded_adult/ds000011-sub-03.log").read_text()
    assert "my_sr: (80, 96, 17) -> (160, 192, 17)" in log  # the program's output
    assert "warning" not in log  # it wrote the HR grid
    assert 15 < adult_psnr(out, "mine") < adult_psnr(out, "bicubic")


@pytest.mark.slow
def test_a_failing_method_of_your_own_fails_its_job_and_names_itself_in_the_log(tmp_path):
    module = "def upsample(lr, scale):\n    return lr * float('nan')\n"
    method = PYTHON_METHOD.replace("params: {steps: 2}", "")
    target = "out/x2/sr/mine/embedded_adult/ds000011-sub-03.npz"
    (tmp_path / "my_sr.py").write_text(module)
    (tmp_path / "config.yaml").write_text(DATA + method)
    args = ["--configfile", "config.yaml", "--cores", "1", "--", target]
    proc = run_snakemake(args, tmp_path, check=False)
    assert proc.returncode != 0 and not (tmp_path / target).exists()
    log = (
        tmp_path / "out/x2/logs/super_resolve/mine/embedded_adult/ds000011-sub-03.log"
    ).read_text()
    assert "method 'mine' returned shape" in log and "ds000011-sub-03.npz" in log


# ---------------------------------------------------------------- in the job, on the steps


def python_method(tmp_path: Path, name: str, body: str):
    """The ``python`` method of a module ``name`` whose ``upsample(lr, scale)`` is ``body``."""
    (tmp_path / f"{name}.py").write_text(f"def upsample(lr, scale):\n    return {body}\n")
    return plugins.python_method("mine", f"{name}:upsample", [tmp_path])


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("lr", r"method 'mine' returned shape \(2, 8, 8\), expected \(2, 16, 16\)"),
        ("lr.repeat_interleave(2, 1).repeat_interleave(2, 2) * float('nan')", "512 NaN/inf"),
    ],
)
def test_a_python_method_s_bad_output_fails_naming_it(tmp_path, body, words):
    method = python_method(tmp_path, f"bad_{len(body)}", body)
    with pytest.raises(ValueError, match=words):
        method(torch.rand(2, 8, 8), 2, make_degradation("bicubic"))


def test_a_python_method_gets_the_operator_only_when_it_asks(tmp_path):
    (tmp_path / "asks.py").write_text(
        "def upsample(lr, scale, degradation, gain=1.0):\n"
        "    return gain * degradation.adjoint(lr, scale) * scale**2\n"
    )
    method = plugins.python_method("mine", "asks:upsample", [tmp_path])
    sr = method(torch.ones(1, 4, 4), 2, make_degradation("gaussian_block"), gain=0.5)
    assert sr.shape == (1, 8, 8) and torch.allclose(sr, torch.full_like(sr, 0.5))
    plain = python_method(tmp_path, "plain", "lr.repeat_interleave(2, 1).repeat_interleave(2, 2)")
    assert plain(torch.ones(1, 4, 4), 2, make_degradation("bicubic")).shape == (1, 8, 8)


def command_script(tmp_path: Path, body: str) -> str:
    """A command running a Python script whose ``main(lr, affine)`` returns (data, affine)."""
    script = tmp_path / f"prog_{abs(hash(body))}.py"
    script.write_text(
        "import sys\nimport nibabel as nib\nimport numpy as np\n"
        + textwrap.dedent(body)
        + "\nimg = nib.load(sys.argv[1])\n"
        "data, affine = main(np.asarray(img.dataobj), img.affine)\n"
        "nib.save(nib.Nifti1Image(data.astype(np.float32), affine), sys.argv[2])\n"
    )
    return f"{sys.executable} {script} {{input}} {{output}}"


UP = "lr.repeat(2, 0).repeat(2, 1)"


@pytest.mark.parametrize(
    ("body", "error", "words"),
    [
        (
            "def main(lr, a):\n    sys.exit('cannot read it')\n",
            RuntimeError,
            "method 'mine': .*python.* exited with code 1",
        ),
        ("def main(lr, a):\n    return lr, a\n", ValueError, r"returned shape \(4, 4, 3\)"),
        (f"def main(lr, a):\n    return {UP} * np.nan, a\n", ValueError, "192 NaN/inf"),
    ],
)
def test_a_command_s_failure_or_bad_output_fails_naming_it(tmp_path, body, error, words, capsys):
    with pytest.raises(error, match=words):
        plugins.run_command("mine", command_script(tmp_path, body), np.ones((3, 4, 4)), 2, (1, 1))
    if error is RuntimeError:
        assert "cannot read it" in capsys.readouterr().out  # the program's output: the log


def test_a_command_gets_the_lr_grid_and_is_warned_off_the_hr_grid(tmp_path, capsys):
    seen = tmp_path / "lr_affine.npy"
    body = f"def main(lr, a):\n    np.save({str(seen)!r}, a)\n    return {UP}, np.eye(4)\n"
    lr = np.random.default_rng(0).random((3, 4, 4))
    sr, seconds = plugins.run_command("mine", command_script(tmp_path, body), lr, 2, (0.5, 0.5))
    assert sr.shape == (3, 8, 8) and seconds > 0
    np.testing.assert_allclose(sr[:, ::2, ::2], lr, rtol=1e-6)
    lr_grid = np.eye(4)  # voxels twice the HR's 0.5 mm, centres shifted by a quarter
    lr_grid[:2, 3] = 0.25
    np.testing.assert_allclose(np.load(seen), lr_grid)
    assert "warning: method 'mine': the output's affine is not the HR grid's" in (
        capsys.readouterr().out
    )


def test_the_lr_grid_upscaled_is_the_hr_grid():
    from rrlsrn.upscale import upscaled_affine

    hr = plugins.hr_grid_affine((0.9, 1.1))
    np.testing.assert_allclose(upscaled_affine(plugins.lr_grid_affine(hr, 2), (0, 1), 2), hr)


def test_a_command_line_is_split_without_a_shell():
    words = plugins.command_line(
        "my sr '{input}' {output}; rm -rf / --scale={scale}", "a b", "c", 2
    )
    assert words == ["my", "sr", "a b", "c;", "rm", "-rf", "/", "--scale=2"]
