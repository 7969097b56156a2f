"""Degradation protocols (issue 16): config checks, per-subject noise seeds, the gains
over bicubic with their intervals, and a tiny run of two protocols through the workflow."""

from __future__ import annotations

import copy
import hashlib

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import scipy.ndimage as ndi
import torch
import yaml
from conftest import REPO, job_counts, run_snakemake

from baselines.interpolation import cubic_spline
from baselines.nmu import nmu
from rrlsrn import pipeline
from rrlsrn.degrade import bicubic_up, make_degradation
from rrlsrn.io import load_npz
from rrlsrn.protocols import describe, protocol_gains, sensitivity_table

SCHEMA = pipeline.load_schema(REPO / "schemas/config.schema.yaml")
T_975_2 = 4.302652729911275  # t(0.975, 2 degrees of freedom), from a table


@pytest.fixture
def config() -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["methods"] = ["bicubic", "cubic_spline", "srcnn"]
    config["protocols"] = [
        {"name": "bicubic", "degradation": {"name": "bicubic"}},
        {"name": "pham", "degradation": {"name": "gaussian_spline", "sigma": 1.0}},
        {"name": "kspace_hamming", "degradation": {"name": "kspace", "window": "hamming"}},
        {"name": "noisy", "degradation": {"name": "bicubic"}, "noise": {"snr": 30, "seed": 0}},
    ]
    return copy.deepcopy(config)


# ---------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("protocols", "expected"),
    [
        ([{}], "config: protocols[0]: 'name' is a required property"),
        ([{"name": "a b"}], "config: protocols[0].name: 'a b' does not match"),
        ([{"name": "x", "noise": {}}], "config: protocols[0].noise: 'snr' is a required"),
        ([{"name": "x", "noise": {"snr": 0}}], "config: protocols[0].noise.snr: 0 is less than"),
        ([{"name": "x", "noize": {}}], "config: unknown key 'noize' in protocols[0]; allowed"),
        (
            [{"name": "x", "degradation": {"name": "pham"}}],
            "config: protocols[0].degradation.name: 'pham' is not one of",
        ),
        (
            [{"name": "x", "degradation": {"name": "kspace", "window": "hann"}}],
            "config: protocols[0].degradation.window: 'hann' is not one of ['none', 'hamming']",
        ),
        ([], "config: protocols: [] should be non-empty"),
    ],
)
def test_bad_protocol_entries_are_one_line_naming_the_key(config, protocols, expected):
    config["protocols"] = protocols
    with pytest.raises(pipeline.ConfigError) as info:
        pipeline.check_schema(config, SCHEMA)
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda c: c["protocols"].append({"name": "pham"}),
            "config: protocols[4].name: 'pham' names two protocols",
        ),
        (
            lambda c: c["protocols"][0]["degradation"].update(window="hamming"),
            "config: protocols[0].degradation.window: the bicubic operator has no window "
            "(only kspace)",
        ),
        (
            lambda c: c["protocols"][2]["degradation"].update(sigma=1.0),
            "config: protocols[2].degradation.sigma: the kspace operator has no sigma "
            "(only gaussian_block, gaussian_spline)",
        ),
        (
            lambda c: c["degradation"].update(window="hamming"),
            "config: degradation.window: the bicubic operator has no window (only kspace)",
        ),
        (
            lambda c: c.update(methods=["cubic_spline", "srcnn"]),
            "config: protocols: the gains are over the bicubic method; add 'bicubic' to methods",
        ),
    ],
)
def test_protocol_mistakes_the_schema_cannot_see(config, change, expected):
    pipeline.check_schema(config, SCHEMA)  # valid for the schema
    change(config)
    with pytest.raises(pipeline.ConfigError) as info:
        pipeline.check_protocols(config)
    assert str(info.value) == expected


def test_schema_fills_in_the_protocol_defaults(config):
    from snakemake.utils import validate

    config["protocols"] = [{"name": "plain"}, {"name": "noisy", "noise": {"snr": 20}}]
    validate(config, str(REPO / "schemas/config.schema.yaml"))
    assert config["protocols"] == [
        {"name": "plain", "degradation": {"name": "bicubic"}},
        {"name": "noisy", "degradation": {"name": "bicubic"}, "noise": {"snr": 20, "seed": 0}},
    ]
    assert config["degradation"] == {"name": "bicubic"}  # no window added: same training


def test_only_the_runs_own_operator_without_noise_reuses_the_runs_results(config):
    reuses = {name: pipeline.protocol_reuses_run(config, name) for name in ("bicubic", "pham")}
    assert reuses == {"bicubic": True, "pham": False}
    assert not pipeline.protocol_reuses_run(config, "kspace_hamming")
    assert not pipeline.protocol_reuses_run(config, "noisy")  # same operator, with noise
    config["degradation"] = {"name": "kspace", "window": "none"}
    config["protocols"][2]["degradation"] = {"name": "kspace"}
    assert pipeline.protocol_reuses_run(config, "kspace_hamming")  # window none: no window
    assert not pipeline.protocol_reuses_run(config, "bicubic")
    assert pipeline.protocol_names(config) == ["bicubic", "pham", "kspace_hamming", "noisy"]
    with pytest.raises(pipeline.ConfigError, match="no protocol 'nope'"):
        pipeline.protocol_entry(config, "nope")


def test_noise_seeds_are_per_subject_stable_and_shared_by_protocols(config):
    config["protocols"].append({"name": "noisy_pham", "degradation": {"name": "gaussian_spline"},
                                "noise": {"snr": 10, "seed": 0}})  # fmt: skip
    spec = pipeline.protocol_degradation(config, "noisy", "embedded_adult", "sub-01")
    # the seed written out: SHA-256 of "0\0embedded_adult\0sub-01", first 8 bytes little
    # endian, halved into torch's seed range
    digest = hashlib.sha256(b"0\x00embedded_adult\x00sub-01").digest()
    assert spec == {
        "name": "bicubic",
        "snr": 30.0,
        "seed": int.from_bytes(digest[:8], "little") // 2,
    }
    other = pipeline.protocol_degradation(config, "noisy", "embedded_adult", "sub-02")
    assert other["seed"] != spec["seed"]
    pham = pipeline.protocol_degradation(config, "noisy_pham", "embedded_adult", "sub-01")
    assert pham == {"name": "gaussian_spline", "snr": 10.0, "seed": spec["seed"]}
    assert pipeline.protocol_degradation(config, "pham", "embedded_adult", "sub-01") == {
        "name": "gaussian_spline",
        "sigma": 1.0,
    }


def test_protocol_descriptions():
    words = [describe(entry) for entry in yaml.safe_load(PROTOCOLS_YAML)]
    assert words == [
        "MATLAB bicubic",
        "Gaussian blur + cubic-spline resampling (Pham et al. 2017), sigma 1 px",
        "k-space truncation, Hamming window",
        "MATLAB bicubic + Rician noise, SNR 30",
    ]


PROTOCOLS_YAML = """\
- {name: bicubic}
- {name: pham, degradation: {name: gaussian_spline}}
- {name: kspace_hamming, degradation: {name: kspace, window: hamming}}
- {name: bicubic_rician, noise: {snr: 30}}
"""


def test_cubic_spline_on_phams_grid_is_scipy_zoom():
    # Pham et al.'s interpolation of their LR: scipy.ndimage.zoom(lr, scale, order=3)
    lr = np.random.default_rng(21).random((2, 9, 7))
    operator = make_degradation("gaussian_spline")
    for scale in (2, 3):
        got = cubic_spline(torch.from_numpy(lr), scale, operator).numpy()
        ref = np.stack([ndi.zoom(s, scale, order=3) for s in lr])
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("name", "params"), [("gaussian_spline", {}), ("kspace", {"window": "hamming"})]
)
def test_nmu_is_consistent_with_the_lr_made_by_the_new_operators(name, params):
    # NMU re-imposes D(x) = y through the operator's exact projection after each pass
    operator = make_degradation(name, **params)
    hr = ndi.gaussian_filter(np.random.default_rng(22).random((24, 20)), 1.0)[None]
    lr = operator(torch.from_numpy(hr), 2)
    sr = nmu(lr, 2, operator, max_iterations=2)
    torch.testing.assert_close(operator(sr, 2), lr, rtol=0, atol=1e-7)


# ---------------------------------------------------------------------------- gains


def slice_rows(method: str, per_subject: dict[str, list[float]]) -> list[dict]:
    return [
        {"method": method, "dataset": "d", "subject": subject, "slice": i, "psnr": v,
         "psnr_mask": v - 1}
        for subject, values in per_subject.items()
        for i, v in enumerate(values)
    ]  # fmt: skip


def test_gains_are_paired_per_subject_with_t_intervals():
    # bicubic per-subject means 30, 31, 35; srcnn 31, 33, 38: differences 1, 2, 3
    # -> mean 2, SD 1, 95% CI 2 +/- t(0.975, 2) / sqrt(3)
    bicubic = {"s1": [29.0, 31.0], "s2": [31.0, 31.0], "s3": [34.0, 36.0]}
    srcnn = {"s1": [31.0, 31.0], "s2": [32.0, 34.0], "s3": [38.0, 38.0]}
    frame = pd.DataFrame(slice_rows("bicubic", bicubic) + slice_rows("srcnn", srcnn))
    long = protocol_gains({"p": frame}, ["bicubic", "srcnn"])
    gain = long[(long["quantity"] == "gain") & (long["metric"] == "psnr")].iloc[0]
    half = T_975_2 / np.sqrt(3)
    assert gain["method"] == "srcnn" and gain["n"] == 3
    assert gain["mean"] == pytest.approx(2.0)
    assert gain["sd"] == pytest.approx(1.0)
    assert (gain["ci_low"], gain["ci_high"]) == pytest.approx((2 - half, 2 + half))
    own = long[(long["quantity"] == "psnr") & (long["method"] == "bicubic")]
    assert own[own["metric"] == "psnr"]["mean"].item() == pytest.approx(32.0)
    assert own[own["metric"] == "psnr_mask"]["mean"].item() == pytest.approx(31.0)
    assert set(long["method"][long["quantity"] == "gain"]) == {"srcnn"}  # none for bicubic
    table = sensitivity_table(long, ["p"])
    assert table["Method"].tolist()[:2] == ["Bicubic (PSNR, dB)", "SRCNN (gain, dB)"]
    expected_cell = f"+2.00 [{2 - half:+.2f}, {2 + half:+.2f}]"
    # bicubic's own: mean 32, SD sqrt((4 + 1 + 9) / 2) = sqrt(7), half 4.3027 sqrt(7/3) = 6.57
    assert table["p"].tolist()[:2] == ["32.00 [25.43, 38.57]", expected_cell]
    with pytest.raises(ValueError, match="protocol 'p': no bicubic metrics"):
        protocol_gains({"p": frame[frame["method"] == "srcnn"]}, ["bicubic", "srcnn"])


def test_table_rows_go_by_dataset_and_metric_with_bicubic_first():
    frames = []
    for dataset in ("adult", "fetal"):
        for method, psnr in (("srcnn", 31.0), ("bicubic", 30.0)):
            rows = slice_rows(method, {"s1": [psnr], "s2": [psnr + 1]})
            frames.append(pd.DataFrame(rows).assign(dataset=dataset))
    frame = pd.concat(frames, ignore_index=True)
    table = sensitivity_table(protocol_gains({"p": frame}, ["bicubic", "srcnn"]), ["p"])
    assert list(zip(table["Dataset"], table["Metric"], table["Method"], strict=True)) == [
        (d, m, f"{name} ({what}, dB)")
        for d in ("adult", "fetal")
        for m in ("PSNR", "PSNR (mask)")
        for name, what in (("Bicubic", "PSNR"), ("SRCNN", "gain"))
    ]
    assert set(table["p"][table["Method"] == "SRCNN (gain, dB)"]) == {"+1.00 [+1.00, +1.00]"}


# ---------------------------------------------------------------------------- workflow


def tiny_volumes(folder) -> None:
    """Two 32x32x3 smooth phantoms inside a disk: two test subjects of a folder dataset."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    disk = ((yy - 16) ** 2 + (xx - 16) ** 2 < 13**2)[..., None]
    folder.mkdir()
    for name in ("a", "b"):
        volume = ndi.gaussian_filter(rng.random((32, 32, 3)), (2, 2, 0))
        volume = (volume - volume.min()) / np.ptp(volume) * disk
        nib.save(nib.Nifti1Image(volume.astype(np.float32), np.eye(4)), folder / f"{name}.nii.gz")


TINY_CONFIG = """\
results: out
datasets:
  mine: {{source: folder, path: {folder}, slice_axis: 2}}
training: {{preset: none}}
methods: [bicubic, cubic_spline]
protocols:
{protocols}"""


def test_the_runs_own_protocol_reuses_its_results_in_the_plan(tmp_path):
    tiny_volumes(tmp_path / "scans")
    config = tmp_path / "config.yaml"
    config.write_text(TINY_CONFIG.format(folder=tmp_path / "scans", protocols=PROTOCOLS_YAML))
    args = ["-n", "--configfile", str(config), "--replace-workflow-config", "--cores", "2"]
    counts = job_counts(run_snakemake(args, tmp_path).stdout)
    # 2 methods x 1 dataset per protocol; the bicubic protocol is the run's own (no job)
    assert counts["protocol_run"] == 3 * 2
    assert counts["super_resolve"] == 2 * 2  # the run itself: 2 methods x 2 subjects
    assert counts["protocol_sensitivity"] == 1


@pytest.mark.slow
def test_two_protocols_run_through_the_workflow(tmp_path):
    tiny_volumes(tmp_path / "scans")
    protocols = """\
- {name: kspace_hamming, degradation: {name: kspace, window: hamming}}
- {name: rician, degradation: {name: bicubic}, noise: {snr: 20, seed: 4}}
"""
    config = tmp_path / "config.yaml"
    config.write_text(TINY_CONFIG.format(folder=tmp_path / "scans", protocols=protocols))
    target = "out/x2/tables/protocol_sensitivity.md"
    args = ["--configfile", str(config), "--replace-workflow-config", "--cores", "2"]
    run_snakemake([*args, "--", target], tmp_path)
    out = tmp_path / "out/x2"
    for stem in ("tables/protocol_sensitivity", "figures/protocol_sensitivity"):
        exts = ("csv", "md", "tex") if stem.startswith("tables") else ("png", "pdf")
        assert all((out / f"{stem}.{ext}").stat().st_size > 0 for ext in exts)
    # every method saw the same noisy LR: the subject's seeded operator, made here again
    parsed = yaml.safe_load(config.read_text())
    for subject in ("a", "b"):
        hr = torch.from_numpy(load_npz(tmp_path / f"out/data/mine/{subject}.npz")["hr"])
        spec = pipeline.protocol_degradation(parsed, "rician", "mine", subject)
        operator = make_degradation(**spec)
        lr = operator.observe(hr, 2)
        assert float((lr - operator(hr, 2)).abs().mean()) > 0.01  # the noise is there
        folder = out / "protocols/rician/sr"
        bicubic = load_npz(folder / f"bicubic/mine/{subject}.npz")["sr"]
        np.testing.assert_allclose(bicubic, bicubic_up(lr, 2).clamp(0, 1), atol=1e-5)
        spline = load_npz(folder / f"cubic_spline/mine/{subject}.npz")["sr"]
        np.testing.assert_allclose(spline, cubic_spline(lr, 2, operator).clamp(0, 1), atol=1e-5)
    # the table's gains, recomputed from the metric files: per-subject mean differences
    long = pd.read_csv(out / "tables/protocol_sensitivity_long.csv")
    for protocol in ("kspace_hamming", "rician"):
        metrics = {
            m: pd.read_csv(out / f"protocols/{protocol}/metrics/{m}/mine.tsv", sep="\t")
            for m in ("bicubic", "cubic_spline")
        }
        per_subject = {m: f.groupby("subject")["psnr"].mean() for m, f in metrics.items()}
        diff = per_subject["cubic_spline"] - per_subject["bicubic"]
        row = long[(long["protocol"] == protocol) & (long["metric"] == "psnr")
                   & (long["quantity"] == "gain")].iloc[0]  # fmt: skip
        assert row["n"] == 2 and row["mean"] == pytest.approx(diff.mean(), abs=1e-5)
        half = 12.706204736174707 * diff.std(ddof=1) / np.sqrt(2)  # t(0.975, 1)
        assert row["ci_high"] - row["mean"] == pytest.approx(half, abs=1e-5)
    assert (
        "rician: MATLAB bicubic + Rician noise, SNR 20"
        in (out / "tables/protocol_sensitivity.md").read_text()
    )
