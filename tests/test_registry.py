"""Tests for rrlsrn.registry: every method defined once, resolvable, importable, light."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
import yaml
from conftest import REPO

from rrlsrn import registry
from rrlsrn.weights import shipped_weights


@pytest.mark.parametrize("method", registry.BUILT_IN, ids=lambda m: m.name)
def test_every_method_is_complete_and_its_factory_imports(method):
    assert method.kind in registry.KINDS
    assert method.label.strip() and method.reference.strip()
    assert callable(registry.factory(method))
    if method.kind == "imported":
        assert callable(registry.load(method.loader))
    else:
        assert method.loader is None
    assert set(method.weights.values()) <= set(shipped_weights())
    if method.kind == "learned":
        assert method.weights  # every learned method ships weights for the default scale
    if method.ablation:
        assert registry.METHODS[method.ablation.full].kind == method.kind


def test_the_ablations_are_tables_4_and_5():
    assert registry.ablations() == {
        "gdl": ("rrlsrn_no_gdl", "rrlsrn", "GDL"),
        "bottom_conv": ("rrlsrn_bicubic_bottom", "rrlsrn", "bottom transposed conv"),
        "no_bottom": ("rrlsrn_no_bottom", "rrlsrn", "image branch"),
    }
    assert [registry.ablation_table_number(a) for a in registry.ablations()] == [4, 5, 5]
    assert registry.ablation_table_stem("no_bottom") == "table5_no_bottom"


def test_resolve_merges_overrides_and_keeps_the_record():
    nmu = registry.resolve("nmu", {"params": {"max_iterations": 2}})
    assert nmu.params == {**registry.METHODS["nmu"].params, "max_iterations": 2}
    assert "max_iterations" not in registry.METHODS["nmu"].params
    srcnn = registry.resolve("srcnn", {"train": {"init": "scratch"}, "weights": "mine"})
    assert srcnn.train == {"gdl_weight": 0.0, "init": "scratch"}
    assert srcnn.weights == {2: "mine", 4: "srcnn_x4"}  # the scale of the run only
    assert registry.resolve("rrlsrn") == registry.METHODS["rrlsrn"]


@pytest.mark.parametrize(
    ("name", "overrides", "words"),
    [
        ("rrlsnr", None, "unknown method 'rrlsnr'; known: bicubic, cubic_spline, nmu"),
        ("nmu", {"parms": {}}, "method 'nmu': unknown keys ['parms']"),
        ("nmu", {"kind": "learned"}, "method 'nmu' is built in"),
        ("mine", {"kind": "imported", "factory": "rrlsrn"}, "kind 'imported' is not"),
    ],
)
def test_resolve_refuses_what_it_cannot_use(name, overrides, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        registry.resolve(name, overrides)


def test_a_bad_import_path_is_named():
    with pytest.raises(ValueError, match="not an import path"):
        registry.load("baselines.nmu")
    with pytest.raises(ValueError, match="cannot import 'baselines.nmu:nope'"):
        registry.load("baselines.nmu:nope")


def test_the_smoke_workflow_runs_every_method_with_shipped_or_no_weights():
    smoke = yaml.safe_load((REPO / "configs/smoke.yaml").read_text())
    runnable = [m.name for m in registry.BUILT_IN if m.kind != "imported"]
    assert sorted(smoke["methods"]) == sorted(runnable)


@pytest.mark.parametrize("module", ["rrlsrn.registry", "rrlsrn.pipeline"])
def test_light_modules_do_not_import_torch(module):
    code = f"import sys, {module}; assert 'torch' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def module_imports(path) -> set[str]:
    """Modules named by every import statement of a file (function-level ones too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def package_modules(package: str) -> dict[str, set[str]]:
    """Module file -> the modules it imports, for every file of ``package``."""
    return {str(p.relative_to(REPO)): module_imports(p) for p in (REPO / package).rglob("*.py")}


def test_no_import_cycle_between_rrlsrn_and_baselines():
    """``baselines`` builds on ``rrlsrn``; ``rrlsrn`` reaches ``baselines`` only through the
    registry's import paths (strings, resolved at use), never by an import statement."""
    for name, imports in package_modules("rrlsrn").items():
        assert not {i for i in imports if i.split(".")[0] == "baselines"}, name
    code = "import sys, baselines; assert 'rrlsrn.infer' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)  # registers nothing


def test_the_methods_command_lists_the_registry(capsys):
    from rrlsrn.cli import main

    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| name | kind | label | reference | scales | weights |"
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert [row[0] for row in rows] == registry.method_names()
    for row, method in zip(rows, registry.BUILT_IN, strict=True):
        assert row[1:4] == [method.kind, method.label, method.reference]
        shipped = ", ".join(method.weights.values())
        assert row[5] == (shipped or ("-" if method.classical else "not shipped"))
