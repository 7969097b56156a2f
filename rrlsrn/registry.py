"""Every method of the benchmark, one record each: the ONE place a method is defined.

A record says what a method is (``kind``), how to make it (``factory``), its default
parameters, how readers see it (``label``, ``reference``), how it is trained and which
weights ship, and its role in the ablations (Tables 4 and 5).  Configs select methods by
name (``methods: [...]``) and may override ``params`` / ``model_args`` / ``train`` /
``weights`` (``method_specs.<name>``); they never redefine a built-in one.

Kinds and factories:

* ``interpolation`` and ``model-based`` (the "classical" methods): ``factory`` is the
  import path ``"module:function"`` of ``f(lr, scale, degradation, **params) -> sr``
  (model-based ones use ``degradation`` as their forward model);
* ``learned`` and ``imported`` (networks): ``factory`` is an architecture name of
  :data:`ARCHITECTURES` (the name checkpoints store), built with ``model_args``;
  ``learned`` ones are trained by the one trainer, ``imported`` ones load weights made
  elsewhere through ``loader``, the import path of ``f(path, scale, **model_args) ->
  nn.Module``.

Scales: a classical method or a plug-in makes any integer scale >= 2; a network is built
for the run's scale (:func:`rrlsrn.models.build_model`).  A ``cascade`` network (RRLSRN and
the LapSRN x2 it imports) is an x2 network that reaches x4, x8, ... by applying its x2
weights log2(scale) times, as the paper proposes (Song et al. 2022, Discussion: "extended
to x4 or x8 times ... by cascading"); it has no x3.  :func:`scale_problem` says whether a
method can run at a scale, :func:`weights_at` which shipped weights serve it there.

A config may define a method of its own (a plug-in, :mod:`rrlsrn.plugins`): ``kind:
python`` with ``entrypoint`` (``"module:function"``), ``kind: learned`` with ``model``
(``"module:Class"``, an ``nn.Module`` built with ``scale`` and ``model_args``) or ``kind:
command`` with ``command`` (a program line); the key becomes the record's ``factory``.

Import paths are resolved lazily (:func:`load`), so this module imports neither torch
nor the ``baselines`` package: every Snakemake start imports it.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CLASSICAL_KINDS = ("interpolation", "model-based")
NETWORK_KINDS = ("learned", "imported")
PLUGIN_KINDS = ("python", "command")  # only defined by configs
KINDS = (*CLASSICAL_KINDS, *NETWORK_KINDS)
OVERRIDABLE = ("params", "model_args", "train", "weights")
# A config's own method: kind -> the key that names its code (it becomes the factory).
PLUGIN_KEYS = {"python": "entrypoint", "learned": "model", "command": "command"}

# Network architectures by the name checkpoints store -> import path of the class.
ARCHITECTURES = {
    "rrlsrn": "rrlsrn.models:RRLSRN",
    "srcnn": "baselines.srcnn:SRCNN",
    "fsrcnn": "baselines.srcnn:FSRCNN",
    "edsr": "baselines.edsr:EDSR",
    "rfdn": "baselines.rfdn:RFDN",
}

PAPER = "Song et al. 2022, Sci. Rep. 12:6437"
# The reference codes' settings, shared by the operator-aware and the as-published rows:
# NMU (Manjon's NLMUpsample) and LRTV (Shi's toolkit, fTestImageLRTV2D).
NMU_PARAMS = {"search_radius": 3, "patch_radius": 1, "tol": 1.2, "min_change": 1.0e-3}
LRTV_PARAMS = {
    "lambda_tv": 0.01,
    "lambda_rank": 0.01,
    "rho": 0.1,
    "dt": 0.1,
    "outer_iterations": 20,
    "inner_iterations": 200,
}


@dataclass(frozen=True)
class Ablation:
    """A variant's role in an ablation table: the paper's Table ``table`` compares it
    with ``full``, which has ``component``; ``key`` names the table's files."""

    key: str
    table: int
    full: str
    component: str


@dataclass(frozen=True)
class Method:
    """One method: see the module docstring for ``kind`` and ``factory``.

    ``params``: a classical method's keyword arguments; ``model_args``: a network's;
    ``train``: training preset overrides (e.g. ``gdl_weight``); ``weights``: shipped
    weights by scale (``{2: "rrlsrn"}``); ``loader``: an imported method's weights loader;
    ``cascade``: an x2 network that reaches x4, x8, ... by cascading its x2 weights.
    """

    name: str
    kind: str
    factory: str
    label: str
    reference: str
    params: dict[str, Any] = field(default_factory=dict)
    model_args: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    weights: dict[int, str] = field(default_factory=dict)
    loader: str | None = None
    ablation: Ablation | None = None
    cascade: bool = False

    @property
    def classical(self) -> bool:
        """Whether the method is a function of the LR input (no network, no weights)."""
        return self.kind in CLASSICAL_KINDS


BUILT_IN = (
    Method(
        "bicubic",
        "interpolation",
        "baselines.interpolation:bicubic",
        "Bicubic",
        "Keys 1981, IEEE Trans. ASSP 29:1153 (cubic convolution, a = -0.5; MATLAB imresize)",
    ),
    Method(
        "cubic_spline",
        "interpolation",
        "baselines.interpolation:cubic_spline",
        "Cubic spline",
        "Unser 1999, IEEE Signal Process. Mag. 16(6):22 (cubic B-spline, scipy order 3)",
    ),
    Method(
        "nmu",
        "model-based",
        "baselines.nmu:nmu",
        "NMU",
        "Manjón et al. 2010, J. Magn. Reson. Imaging 31:192 (NLMUpsample reference code)",
        params={**NMU_PARAMS},
    ),
    Method(
        "nmu_3d",
        "model-based",
        "baselines.nmu:nmu",
        "NMU 3D",
        "Manjón et al. 2010, J. Magn. Reson. Imaging 31:192 (NLMUpsample reference code, "
        "in 3D: 7x7x7 search, 3x3x3 patches over a subject's stack, upsampled in-plane; "
        "the run's operator for the initial estimate and consistency)",
        # dims 3: rrlsrn.infer hands the method a subject's whole stack as one volume
        params={**NMU_PARAMS, "dims": 3},
    ),
    Method(
        "nmu_reference",
        "model-based",
        "baselines.nmu:nmu_reference",
        "NMU (as published)",
        "Manjón et al. 2010, J. Magn. Reson. Imaging 31:192 (NLMUpsample2 + "
        "cMRegularizarNLM3D exactly: 3D, spline initial estimate, block-mean forward model)",
        params={**NMU_PARAMS, "dims": 3, "truncate_mean_difference": True},
    ),
    Method(
        "lrtv",
        "model-based",
        "baselines.lrtv:lrtv",
        "LRTV",
        "Shi et al. 2015, IEEE Trans. Med. Imaging 34:2459 (the authors' LRTV toolkit)",
        # The toolkit restarts every x-update from the initial interpolation; continuing
        # from the previous x is 4x faster on 2 cores for -0.05 dB (README, "Speed").
        # configs/paper.yaml sets false: the exact scheme.
        params={**LRTV_PARAMS, "warm_start": True},
    ),
    Method(
        "lrtv_reference",
        "model-based",
        "baselines.lrtv:lrtv",
        "LRTV (as published)",
        "Shi et al. 2015, IEEE Trans. Med. Imaging 34:2459 (the authors' LRTV toolkit as "
        "published: nearest-neighbour initial estimate, its own forward model (Gaussian "
        "blur sigma 1 HR pixel + block mean) whatever operator made the LR input, its "
        "x-update exactly: restarted each time, its finite differences, its stopping rule)",
        params={
            **LRTV_PARAMS,
            "warm_start": False,
            "initial": "nearest",
            "forward_model": "toolkit",
            "x_update": "toolkit",
        },
    ),
    Method(
        "srcnn",
        "learned",
        "srcnn",
        "SRCNN",
        "Dong et al. 2016, IEEE Trans. Pattern Anal. Mach. Intell. 38:295 (SRCNN 9-1-5)",
        model_args={"kernels": [9, 1, 5]},
        train={"gdl_weight": 0.0},
        weights={2: "srcnn", 4: "srcnn_x4"},
    ),
    Method(
        "fsrcnn",
        "learned",
        "fsrcnn",
        "FSRCNN",
        "Dong et al. 2016, ECCV, LNCS 9906:391 (FSRCNN(56, 12, 4))",
        model_args={"d": 56, "s": 12, "m": 4},
        train={"gdl_weight": 0.0},
        weights={2: "fsrcnn", 4: "fsrcnn_x4"},
    ),
    Method(
        "edsr",
        "learned",
        "edsr",
        "EDSR-baseline",
        "Lim et al. 2017, CVPR Workshops (EDSR baseline: 16 residual blocks, 64 features, "
        "pixel shuffle; 1.37M parameters at x2)",
        model_args={"n_resblocks": 16, "n_feats": 64, "res_scale": 1.0},
        train={"gdl_weight": 0.0},
        weights={2: "edsr", 4: "edsr_x4"},
    ),
    Method(
        "rfdn",
        "learned",
        "rfdn",
        "RFDN",
        "Liu et al. 2020, ECCV Workshops, LNCS 12537, arXiv:2009.11551 (RFDN, the "
        "released 4-block 50-feature network; 0.41M parameters at x2)",
        model_args={"nf": 50, "num_modules": 4},
        train={"gdl_weight": 0.0},
        weights={2: "rfdn", 4: "rfdn_x4"},
    ),
    Method(
        "lapsrn_x2",
        "imported",
        "rrlsrn",
        "LapSRN x2 (natural images)",
        "Lai et al. 2017, CVPR (LapSRN x2, the official MatConvNet weights, not fine-tuned)",
        model_args={"depth": 10},
        loader="rrlsrn.lapsrn:lapsrn_x2_model",
        cascade=True,
    ),
    Method(
        "rrlsrn",
        "learned",
        "rrlsrn",
        "RRLSRN",
        f"{PAPER} (13 convs, Charbonnier + GDL)",
        train={"gdl_weight": 1.0},
        weights={2: "rrlsrn"},
        cascade=True,
    ),
    Method(
        "rrlsrn_no_gdl",
        "learned",
        "rrlsrn",
        "RRLSRN without GDL",
        f"{PAPER}, Table 4 (trained without the GDL term)",
        train={"gdl_weight": 0.0},
        weights={2: "rrlsrn_no_gdl"},
        ablation=Ablation("gdl", 4, "rrlsrn", "GDL"),
        cascade=True,
    ),
    Method(
        "rrlsrn_bicubic_bottom",
        "learned",
        "rrlsrn",
        "RRLSRN, bicubic bottom",
        f"{PAPER}, Table 5 (fixed bicubic instead of the bottom transposed conv)",
        model_args={"image_branch": "bicubic"},
        train={"gdl_weight": 1.0},
        weights={2: "rrlsrn_bicubic_bottom"},
        ablation=Ablation("bottom_conv", 5, "rrlsrn", "bottom transposed conv"),
        cascade=True,
    ),
    Method(
        "rrlsrn_no_bottom",
        "learned",
        "rrlsrn",
        "RRLSRN, no bottom",
        f"{PAPER}, Table 5, read as no image branch at all (the feature branch alone, no "
        "global residual: 'residual learning is beneficial')",
        model_args={"image_branch": "none"},
        train={"gdl_weight": 1.0},
        weights={2: "rrlsrn_no_bottom"},
        ablation=Ablation("no_bottom", 5, "rrlsrn", "image branch"),
        cascade=True,
    ),
)
METHODS: dict[str, Method] = {m.name: m for m in BUILT_IN}


def method_names() -> list[str]:
    """Names of the built-in methods, in the registry's order."""
    return list(METHODS)


def resolve(name: str, overrides: Mapping[str, Any] | None = None, scale: int = 2) -> Method:
    """The method ``name`` with a config's ``method_specs.<name>`` merged on top.

    ``params``, ``model_args`` and ``train`` are merged key by key; ``weights`` (a shipped
    name) replaces the weights of ``scale``.  A name that is not built in is a
    method defined by the config: it needs ``kind`` and ``factory``.  Raises ValueError
    naming the known methods.
    """
    overrides = dict(overrides or {})
    kind, factory = overrides.pop("kind", None), overrides.pop("factory", None)
    plugin = {key: overrides.pop(key) for key in set(PLUGIN_KEYS.values()) & set(overrides)}
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise ValueError(f"method {name!r}: unknown keys {unknown}; allowed: {OVERRIDABLE}")
    if name in METHODS:
        base = METHODS[name]
        changed = (kind or base.kind) != base.kind or (factory or base.factory) != base.factory
        if changed or plugin:
            raise ValueError(
                f"method {name!r} is built in ({base.kind}, {base.factory}); a config may "
                f"override only {', '.join(OVERRIDABLE)}: choose another name for a new method"
            )
    elif kind is None or (factory is None and not plugin):
        raise ValueError(
            f"unknown method {name!r}; known: {', '.join(METHODS)} (a new method needs "
            "'kind' and 'factory' (or 'entrypoint', 'model', 'command') in its "
            "method_specs entry)"
        )
    else:
        factory = _own_factory(name, kind, factory, plugin)
        base = Method(name, kind, factory, label=name, reference="defined in the config")
        if kind == "learned" and ":" in factory:  # a model class of the user's: gets the scale
            overrides["model_args"] = {**overrides.get("model_args", {}), "scale": scale}
    weights = overrides.pop("weights", None)
    return dataclasses.replace(
        base,
        **{key: {**getattr(base, key), **value} for key, value in overrides.items()},
        **({"weights": {**base.weights, scale: weights}} if weights else {}),
    )


def _own_factory(name: str, kind: str, factory: str | None, plugin: dict[str, str]) -> str:
    """The factory of a config's own method: ``factory`` or the one key its kind takes."""
    if kind not in (*CLASSICAL_KINDS, "learned", *PLUGIN_KINDS):
        raise ValueError(
            f"method {name!r}: kind {kind!r} is not interpolation, model-based, learned, "
            "python or command"
        )
    keys = {"factory", PLUGIN_KEYS.get(kind)} - {None}
    keys -= {"factory"} if kind in PLUGIN_KINDS else set()
    given = [*plugin, *(["factory"] if factory is not None else [])]
    if len(given) != 1 or given[0] not in keys:
        raise ValueError(
            f"method {name!r} of kind {kind!r} takes one of {sorted(keys)}, got {given}"
        )
    return factory if factory is not None else plugin[given[0]]


def ablations() -> dict[str, tuple[str, str, str]]:
    """Tables 4 and 5 in table order: key -> (variant without the component, full model,
    component), e.g. ``"gdl": ("rrlsrn_no_gdl", "rrlsrn", "GDL")``."""
    variants = sorted((m for m in BUILT_IN if m.ablation), key=lambda m: m.ablation.table)
    return {m.ablation.key: (m.name, m.ablation.full, m.ablation.component) for m in variants}


def ablation_table_number(key: str) -> int:
    """The paper's table number of an ablation (4: ``gdl``; 5: ``bottom_conv`` and
    ``no_bottom``, the two readings of the paper's Table 5)."""
    return next(m.ablation.table for m in BUILT_IN if m.ablation and m.ablation.key == key)


def ablation_table_stem(key: str) -> str:
    """The file stem of an ablation's table, e.g. ``table5_no_bottom``."""
    return f"table{ablation_table_number(key)}_{key}"


def label(name: str) -> str:
    """The name a reader sees for a method (the name itself when it is not built in)."""
    return METHODS[name].label if name in METHODS else name


def _not_a_scale(scale: Any) -> str | None:
    """Why ``scale`` is no scale (an integer >= 2), or None."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
        return f"the scale must be an integer of at least 2, got {scale!r}"
    return None


def cascade_passes(scale: int, network: str = "the network") -> int:
    """How many passes of an x2 network make x``scale``: log2(scale).

    Raises ValueError, one line naming ``network``, unless ``scale`` is a power of 2 >= 2.
    """
    if reason := _not_a_scale(scale):
        raise ValueError(reason)
    if scale & (scale - 1):
        raise ValueError(
            f"{network} reaches x2, x4, x8, ... (powers of 2) by cascading its x2 network, "
            f"not x{scale}"
        )
    return scale.bit_length() - 1


def scale_problem(method: Method, scale: int) -> str | None:
    """Why ``method`` cannot run at x``scale`` (one line), or None when it can.

    Classical methods, plug-ins and networks trained at the scale: any integer >= 2;
    cascade networks (:attr:`Method.cascade`): powers of 2.
    """
    if reason := _not_a_scale(scale):
        return f"{method.name}: {reason}"
    if method.cascade:
        try:
            cascade_passes(scale, method.name)
        except ValueError as error:
            return str(error)
    return None


def weights_at(method: Method, scale: int) -> str | None:
    """The shipped weights that serve ``method`` at x``scale``, or None.

    A cascade method runs its x2 weights at every power of 2 (weights recorded for the
    scale itself, e.g. by a config's ``weights`` override, come first); any other
    network needs weights trained at the scale.
    """
    if scale_problem(method, scale) is not None:
        return None
    if method.cascade:
        return method.weights.get(scale, method.weights.get(2))
    return method.weights.get(scale)


def scales_text(method: Method) -> str:
    """The scales ``method`` makes, for ``rrlsrn methods``: ``any`` (classical),
    ``x2, x4, ... (x2 cascade)`` or ``any (trained); x2 shipped`` (other networks)."""
    if method.cascade:
        return "x2, x4, ... (x2 cascade)"
    if method.classical:
        return "any"
    shipped = ", ".join(f"x{s}" for s in sorted(method.weights))
    return f"any (trained); {shipped} shipped" if shipped else "any (trained)"


def methods_table() -> str:
    """The registry as a Markdown table (``rrlsrn methods``): name, kind, label,
    reference, scales, shipped weights."""
    rows = [
        "| name | kind | label | reference | scales | weights |",
        "|---|---|---|---|---|---|",
    ]
    for m in BUILT_IN:
        weights = ", ".join(m.weights.values()) or ("-" if m.classical else "not shipped")
        rows.append(
            f"| {m.name} | {m.kind} | {m.label} | {m.reference} | {scales_text(m)} | {weights} |"
        )
    return "\n".join(rows)


def load(path: str) -> Any:
    """The object an import path ``"package.module:attribute"`` names, imported now."""
    module, _, attribute = path.partition(":")
    if not module or not attribute:
        raise ValueError(f"{path!r} is not an import path 'package.module:attribute'")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"cannot import {path!r}: {error}") from error


def architecture(name: str) -> Any:
    """The network class (or builder) of an architecture name of :data:`ARCHITECTURES`,
    or of a user's class path ``"module:Class"`` (a config's own learned method)."""
    if ":" in name:
        return load(name)
    if name not in ARCHITECTURES:
        raise KeyError(f"unknown model {name!r}; registered: {sorted(ARCHITECTURES)}")
    return load(ARCHITECTURES[name])


def factory(method: Method) -> Any:
    """The callable that makes ``method``: its function (classical) or network class."""
    return load(method.factory) if method.classical else architecture(method.factory)
