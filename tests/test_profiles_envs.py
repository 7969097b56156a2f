"""Snakemake profiles (profiles/default, profiles/slurm) and conda env files (envs/)."""

from __future__ import annotations

import ast
import collections
import re
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest
import yaml
from conftest import REPO, job_counts, run_snakemake
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from rrlsrn import registry

ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))
RULE_FILES = sorted((REPO / "rules").glob("*.smk"))
DEFAULT_PROFILE = REPO / "profiles" / "default" / "config.yaml"
SLURM_PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
GPU_RULES = ("train", "super_resolve")
# The workflow engine runs the rules; it is not needed inside a rule's env: a `script:`
# finds Snakemake through the search path that Snakemake's script preamble adds.
ENGINE = {"snakemake", "snakemake-executor-plugin-slurm"}


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def pyproject_requirements() -> dict[str, Requirement]:
    reqs = [Requirement(line) for line in pyproject()["dependencies"]]
    return {canonicalize_name(r.name): r for r in reqs}


def env_pip_requirements(env: dict) -> list[Requirement]:
    """The pip section's requirements; option lines (``-e ..``, ``--index-url``) skipped."""
    sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    return [Requirement(line) for pip in sections for line in pip if not line.startswith("-")]


def rule_blocks() -> dict[str, str]:
    """``{rule name: its text}`` for every rule and checkpoint of rules/*.smk and Snakefile."""
    blocks = {}
    for path in [*RULE_FILES, REPO / "Snakefile"]:
        parts = re.split(r"^(?:rule|checkpoint) (\w+):$", path.read_text(), flags=re.M)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            block = re.split(r"^\S", body, maxsplit=1, flags=re.M)[0]
            blocks[name] = block
    return blocks


def job_blocks(output: str, rule: str) -> list[str]:
    """The dry run's description of every job of ``rule``."""
    blocks = re.split(r"^(?=(?:local)?rule \w+:$)", output, flags=re.M)
    return [b for b in blocks if b.startswith(f"rule {rule}:\n")]


def job_resources(block: str) -> dict[str, str]:
    line = re.search(r"^\s+resources: (.*)$", block, flags=re.M)[1]
    return dict(item.split("=", 1) for item in line.split(", "))


@pytest.fixture(scope="module")
def cli_options() -> set[str]:
    """Every long option of `snakemake --help`, the installed executor plugins' included."""
    help_text = subprocess.run(
        [sys.executable, "-m", "snakemake", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return set(re.findall(r"(?<![\w-])--([a-z0-9][a-z0-9-]*)", help_text))


def test_env_files_exist():
    assert ENV_FILES, "no conda env file in envs/"


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_equal_pyproject(env_file):
    pins = pyproject_requirements()
    reqs = env_pip_requirements(load_yaml(env_file))
    assert reqs, f"{env_file.name}: empty pip section"
    for req in reqs:
        name = canonicalize_name(req.name)
        assert name in pins, f"{env_file.name}: {req} is not a dependency in pyproject.toml"
        assert name not in ENGINE, f"{env_file.name}: {req} belongs to the workflow engine"
        assert (req.specifier, req.extras, req.marker) == (
            pins[name].specifier,
            pins[name].extras,
            pins[name].marker,
        ), f"{env_file.name}: {req} but pyproject.toml has {pins[name]}"
    names = [canonicalize_name(r.name) for r in reqs]
    assert len(names) == len(set(names)), f"{env_file.name}: a package is listed twice"


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_files_name_no_local_path(env_file):
    # Snakemake deploys a copy of the env file alone (in .snakemake/conda/), so a
    # relative `-e ..` or `-r requirements.txt` would point nowhere.
    pip = [d["pip"] for d in load_yaml(env_file)["dependencies"] if isinstance(d, dict)]
    options = [line for lines in pip for line in lines if line.startswith("-")]
    assert options == [], f"{env_file.name}: {options}"


def test_envs_hold_every_runtime_dependency():
    pins = pyproject_requirements()
    assert pins.keys() >= ENGINE, "ENGINE names a package pyproject.toml no longer has"
    in_envs = {
        canonicalize_name(r.name) for f in ENV_FILES for r in env_pip_requirements(load_yaml(f))
    }
    assert set(pins) - ENGINE - in_envs == set()


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_python_satisfies_requires_python(env_file):
    conda_deps = [d for d in load_yaml(env_file)["dependencies"] if isinstance(d, str)]
    pythons = [d for d in conda_deps if re.match(r"python\b", d)]
    assert len(pythons) == 1, f"{env_file.name}: {pythons}"
    # conda's `python=3.11` means 3.11.*: its lowest release must satisfy requires-python
    version = re.fullmatch(r"python\s*=?=?\s*(\d+(?:\.\d+)*)(?:\.\*)?", pythons[0])
    assert version, f"{env_file.name}: pin python to a version, not {pythons[0]!r}"
    requires = SpecifierSet(pyproject()["requires-python"])
    assert Version(version[1]) in requires, f"{pythons[0]} vs requires-python {requires}"
    assert "pip" in conda_deps, f"{env_file.name}: a pip section needs pip itself"


def test_conda_directives_name_existing_env_files():
    blocks = rule_blocks()
    for rule, block in blocks.items():
        envs = re.findall(r"^\s+conda:\s*\n\s+\"([^\"]+)\"", block, flags=re.M)
        if "script:" in block:
            assert envs, f"rule {rule} runs a script but names no conda env"
        for env in envs:
            # a relative `conda:` path is relative to the file that holds the rule
            path = (REPO / "rules" / env).resolve()
            assert path.is_file(), f"rule {rule}: conda env {env} not found"
            assert path.parent == REPO / "envs", f"rule {rule}: {env} is outside envs/"
    assert sum("conda:" in b for b in blocks.values()) >= len(RULE_FILES)


def test_default_profile_stays_local():
    profile = load_yaml(DEFAULT_PROFILE)
    assert profile.get("executor", "local") != "slurm"
    # Loaded beside --profile profiles/slurm, it wins key by key: it must not replace
    # what the SLURM profile sets.
    slurm = load_yaml(SLURM_PROFILE)
    assert {k: profile[k] for k in profile.keys() & slurm.keys()} == {
        k: slurm[k] for k in profile.keys() & slurm.keys()
    }
    for key in ("executor", "jobs", "cores", "default-resources", "set-resources", "set-threads"):
        assert key not in profile, f"{key} in the default profile overrides profiles/slurm"


def resource_value(value, model_input):
    """A profile resource as Snakemake evaluates it for a super_resolve job whose `model`
    input is ``model_input`` (a trained checkpoint for learned methods, else empty)."""
    return eval(str(value), {"input": types.SimpleNamespace(model=model_input)})


def test_slurm_profile_requests_gpus_for_training_and_learned_inference():
    profile = load_yaml(SLURM_PROFILE)
    assert profile["executor"] == "slurm"
    resources = profile["set-resources"]
    assert resources["train"]["gpu"] == 1
    # super_resolve: a GPU for the methods that run a trained checkpoint; the classical
    # ones (no `model` input) go to the CPU partition without one
    inference = resources["super_resolve"]
    assert resource_value(inference["gpu"], ["results/models/rrlsrn/best.pt"]) == 1
    assert resource_value(inference["gpu"], []) == 0
    gpu_partition = resource_value(inference["slurm_partition"], ["best.pt"])
    cpu_partition = resource_value(inference["slurm_partition"], [])
    assert gpu_partition == ast.literal_eval(resources["train"]["slurm_partition"])
    assert cpu_partition == ast.literal_eval(profile["default-resources"]["slurm_partition"])
    for rule in GPU_RULES:
        assert isinstance(resources[rule]["runtime"], int), rule  # minutes
        assert isinstance(resources[rule]["mem_mb"], int), rule
        assert isinstance(profile["set-threads"][rule], int), rule
    defaults = profile["default-resources"]
    assert {"slurm_partition", "runtime", "mem_mb", "tmpdir"} <= defaults.keys()
    for res in [defaults, *resources.values()]:
        for key in ("slurm_partition", "slurm_account"):
            if key in res:  # evaluated as Python: a name must be a quoted string literal
                assert isinstance(resource_value(res[key], ["best.pt"]), str), (key, res[key])


def test_slurm_profile_names_existing_rules_and_fits_threads():
    profile = load_yaml(SLURM_PROFILE)
    rules = rule_blocks()
    for key in ("set-resources", "set-threads"):
        assert set(profile[key]) <= set(rules), f"{key} names an unknown rule"
    # threads: workflow.cores needs --cores even on SLURM; it also caps every job's threads
    if any("workflow.cores" in block for block in rules.values()):
        assert isinstance(profile.get("cores"), int)
    assert max(profile["set-threads"].values()) <= profile["cores"]


def test_profile_keys_are_snakemake_options(cli_options):
    assert {"slurm-status-command", "slurm-init-seconds-before-status-checks"} <= cli_options
    for path in (DEFAULT_PROFILE, SLURM_PROFILE):
        keys = set(load_yaml(path))
        # options left commented out for users to switch on (`# key: value`) must exist too
        commented = re.findall(r"^# ?([a-z][a-z0-9-]+): *[^\s#]*$", path.read_text(), re.M)
        keys |= set(commented)
        assert keys - cli_options == set(), path.relative_to(REPO)


def test_slurm_profile_dry_run_lists_the_local_jobs(tmp_path):
    training = 'training={"preset": "demo"}'  # the default (none) has no train jobs
    config = ["--config", "lapsrn_mat=null", f"results={tmp_path / 'out'}", training]
    proc = run_snakemake(["-n", "--profile", str(SLURM_PROFILE.parent), *config], tmp_path)
    output = proc.stdout + proc.stderr
    assert "and workflow specific profile" in output  # profiles/default was loaded too
    local = run_snakemake(["-n", "--cores", "2", *config], tmp_path)
    counts = job_counts(output)
    assert counts == job_counts(local.stdout + local.stderr)
    assert counts["train"] >= 1
    profile = load_yaml(SLURM_PROFILE)
    on_gpu = collections.Counter()
    for rule in GPU_RULES:
        blocks = job_blocks(output, rule)
        assert len(blocks) == counts[rule]
        wanted = profile["set-resources"][rule]
        for block in blocks:
            resources = job_resources(block)
            method = re.search(r"method=(\w+)", block)[1]
            # what each job needs: the trained checkpoint of a learned method, or nothing
            learned = registry.METHODS[method].kind == "learned"
            model = ["best.pt"] if rule == "train" or learned else []
            on_gpu[rule, bool(model)] += 1
            assert resources["gpu"] == str(resource_value(wanted["gpu"], model)), block
            assert resources["slurm_partition"] == resource_value(wanted["slurm_partition"], model)
            assert resources["runtime"] == str(wanted["runtime"])
            assert resources["mem_mb"] == str(wanted["mem_mb"])
            assert f"threads: {profile['set-threads'][rule]}\n" in block
    # 8 learned methods x 9 test units on GPUs; 4 classical methods x 9 on CPU nodes
    assert on_gpu[("super_resolve", True)] == 72 and on_gpu[("super_resolve", False)] == 36


def test_slurm_profile_starts_a_real_run_without_a_cluster(tmp_path):
    """Not a dry run: Snakemake parses the workflow with the SLURM profile (a dry run sets
    --cores for itself) and starts the SLURM executor. The target exists, so nothing is
    submitted and no sbatch is needed."""
    dataset = next(iter(load_yaml(REPO / "config.yaml")["datasets"]))
    target = tmp_path / "out" / "splits" / f"{dataset}.tsv"
    target.parent.mkdir(parents=True)
    target.write_text("subject\trole\n")
    proc = run_snakemake(
        [
            str(target),
            "--profile",
            str(SLURM_PROFILE.parent),
            "--config",
            "lapsrn_mat=null",
            f"results={tmp_path / 'out'}",
        ],
        tmp_path,
    )
    output = proc.stdout + proc.stderr
    assert "SLURM run ID" in output
    assert "Nothing to be done" in output
