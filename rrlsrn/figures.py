"""The paper's figures from prepared slices, SR outputs, metric files and training logs.

- Fig. 2 (:func:`example_figure`): one test slice, HR, LR and every method side by side, each
  panel with an enlarged crop of the same zoom window and the slice's PSNR / SSIM.
- Fig. 3 (:func:`error_map_figure`): ``|SR - HR|`` of the same slice per method, on one
  shared colour scale.
- Fig. 4 (:func:`gdl_figure`): RRLSRN with and without the gradient difference loss, zoomed
  on the window with the strongest edges, with their error maps.
- :func:`training_curves_figure`: training loss and validation PSNR over bicubic of the
  learned models, from the start of the shipped weights' pretraining.

The choices that decide what a reader sees are rules, not hand picks, so a figure can be
regenerated from any run and cited:

1. **Slice** (:func:`choose_example_slice`): among a dataset's test slices, the one whose
   RRLSRN PSNR is the median (for an even count the lower of the two middle values; ties in
   subject, then slice order).  A typical slice, neither the best nor the worst.
2. **Display crop** (:func:`choose_display_crop`): when the slice's mask bounding box is
   smaller than half the slice side (the fetal brain covers a few percent of the field of
   view), every panel shows the same square around that box plus a margin; otherwise the
   whole slice.
3. **Zoom window** (:func:`choose_zoom_window`): the square (a quarter of the displayed side)
   whose mean HR gradient magnitude is highest, with its centre inside the mask: edges and
   fine structure are where the methods differ.

Caption numbers come from the metric files (the rows of the shown method, subject and
slice), never recomputed here, so figures and tables agree.  Figures are built as
:class:`matplotlib.figure.Figure` objects (no pyplot, no global state) and saved as PNG and
PDF atomically (:func:`save_figure`).
"""

from __future__ import annotations

import json
import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from rrlsrn.io import atomic_path, load_npz, write_text_atomic
from rrlsrn.labels import method_label
from rrlsrn.registry import ablations
from rrlsrn.tables import load_metrics, read_table

PathLike = str | os.PathLike
Window = tuple[int, int, int]  # (row0, col0, size)
Box = tuple[int, int, int, int]  # (row0, row1, col0, col1), half-open

LOG_COLUMNS = ["step", "loss", "val_psnr"]
WITHOUT_GDL, WITH_GDL, _ = ablations()["gdl"]

# Layout, in inches and points: every panel is PANEL_W wide; text is never below 8 pt.
PANEL_W = 2.2
GAP = 0.12
MARGIN = 0.15
TITLE_H = 0.45
CAPTION_PT = 9
TITLE_PT = 11
LINE_H = CAPTION_PT * 1.25 / 72  # one caption line, inches
PER_ROW = 4
WINDOW_COLOUR = "#ffd400"
ERROR_CMAP = "inferno"
ERROR_LABEL = "|SR − HR| (normalised intensity)"
PERCENTILE = 99.5
BAR_H = 0.15 + 0.42  # colour bar, then its tick labels and label

SLICE_RULE = (
    "the test slice whose {method} {metric} is the median over the dataset's test slices "
    "(for an even count the lower of the two middle values; ties broken by subject, then "
    "slice order)"
)
WINDOW_RULE = (
    "the square of side {fraction:g} x the displayed side whose mean HR gradient magnitude "
    "is highest, among windows centred inside the mask"
)
CROP_RULE = (
    "every panel is cropped to the same square around the slice's mask bounding box plus "
    "a {margin:g} x margin when that box is smaller than {threshold:g} x the slice side; "
    "otherwise the whole slice is shown"
)


# --------------------------------------------------------------------------- rules


def choose_example_slice(
    metrics: pd.DataFrame, dataset: str, method: str = "rrlsrn", metric: str = "psnr"
) -> tuple[str, int]:
    """(subject, slice) of the dataset's slice whose ``method`` ``metric`` is the median.

    For an even count the lower of the two middle values is taken, so the choice is always
    a real slice; equal values are ordered by subject, then slice.  NaN values are skipped.
    """
    missing = [c for c in ("method", "dataset", "subject", "slice", metric) if c not in metrics]
    if missing:
        raise ValueError(f"metrics table lacks columns {missing}")
    rows = metrics[(metrics["dataset"] == dataset) & (metrics["method"] == method)]
    rows = rows[np.isfinite(rows[metric].astype(float))]
    if rows.empty:
        raise ValueError(f"no {metric} rows for method {method!r} in dataset {dataset!r}")
    ordered = rows.assign(subject=rows["subject"].astype(str)).sort_values(
        [metric, "subject", "slice"], kind="mergesort"
    )
    row = ordered.iloc[(len(ordered) - 1) // 2]
    return str(row["subject"]), int(row["slice"])


def choose_display_crop(
    mask: np.ndarray | None,
    shape: tuple[int, int],
    threshold: float = 0.5,
    margin: float = 0.15,
    min_side: int = 32,
) -> Box:
    """Half-open (row0, row1, col0, col1) shown in every panel of a slice of ``shape``.

    Small anatomy (mask bounding box side below ``threshold`` x the slice's shorter side,
    e.g. a fetal brain in a maternal field of view) would be a few pixels wide in a
    2-inch panel, so the panels show a square around the box, ``margin`` x its side on
    each edge (at least ``min_side`` pixels), moved inside the slice.  Otherwise, or
    without a mask, the whole slice.
    """
    H, W = shape
    full = (0, H, 0, W)
    if mask is None or not mask.any():
        return full
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    extent = max(r1 - r0, c1 - c0)
    if extent >= threshold * min(H, W):
        return full
    side = min(max(int(math.ceil(extent * (1 + 2 * margin))), min_side), H, W)
    top = int(np.clip((r0 + r1 - side) // 2, 0, H - side))
    left = int(np.clip((c0 + c1 - side) // 2, 0, W - side))
    return (top, top + side, left, left + side)


def _window_sums(values: np.ndarray, size: int) -> np.ndarray:
    """Sum of ``values`` over every ``size`` x ``size`` window, indexed by its top-left corner."""
    integral = np.zeros((values.shape[0] + 1, values.shape[1] + 1))
    integral[1:, 1:] = values.astype(np.float64).cumsum(0).cumsum(1)
    return (
        integral[size:, size:]
        - integral[:-size, size:]
        - integral[size:, :-size]
        + integral[:-size, :-size]
    )


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """Per-pixel |grad| of a 2D image (central differences)."""
    gr, gc = np.gradient(np.asarray(image, dtype=np.float64))
    return np.hypot(gr, gc)


def choose_zoom_window(hr: np.ndarray, mask: np.ndarray | None, fraction: float = 0.25) -> Window:
    """(row0, col0, size) of the square with the highest mean HR gradient magnitude.

    ``size = round(fraction * min(H, W))``; only windows whose centre pixel
    ``(row0 + size // 2, col0 + size // 2)`` lies in ``mask`` compete when a non-empty mask
    is given (otherwise every window does).  Ties go to the first window in row-major order.
    Edges and fine structure are where super-resolution methods differ, so this window shows
    the differences.
    """
    if hr.ndim != 2:
        raise ValueError(f"hr must be a 2D slice, got shape {hr.shape}")
    H, W = hr.shape
    size = int(min(max(round(fraction * min(H, W)), 1), H, W))
    score = _window_sums(gradient_magnitude(hr), size) / size**2
    if mask is not None:
        if mask.shape != hr.shape:
            raise ValueError(f"mask shape {mask.shape} differs from the slice's {hr.shape}")
        half = size // 2
        centred = mask.astype(bool)[half : half + score.shape[0], half : half + score.shape[1]]
        if centred.any():
            score = np.where(centred, score, -np.inf)
    row0, col0 = np.unravel_index(int(np.argmax(score)), score.shape)
    return int(row0), int(col0), size


# --------------------------------------------------------------------------- drawing helpers


def _grey_range(hr: np.ndarray) -> tuple[float, float]:
    """0 and the HR's 99.5th percentile (its maximum, or 1, when that is not positive)."""
    vmax = float(np.percentile(hr, PERCENTILE))
    if not vmax > 0:
        vmax = float(hr.max()) if hr.max() > 0 else 1.0
    return 0.0, vmax


def _error_vmax(errors: Sequence[np.ndarray]) -> float:
    pooled = np.concatenate([np.ravel(e) for e in errors]) if errors else np.zeros(1)
    return max(float(np.percentile(pooled, PERCENTILE)), 1e-6)


def _image_axes(fig: Figure, left: float, bottom: float, width: float, height: float) -> Axes:
    """Axes at a position in inches from the figure's bottom left, without ticks."""
    fw, fh = fig.get_size_inches()
    ax = fig.add_axes((left / fw, bottom / fh, width / fw, height / fh))
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def _show(ax: Axes, image: np.ndarray, **kwargs: Any) -> None:
    ax.imshow(image, interpolation="nearest", aspect="auto", **kwargs)


def _outline(ax: Axes, window: Window) -> None:
    row0, col0, size = window
    ax.add_patch(
        Rectangle((col0 - 0.5, row0 - 0.5), size, size, fill=False, edgecolor=WINDOW_COLOUR, lw=1.2)
    )


def _frame(ax: Axes) -> None:
    """Colour the crop's frame like the window outline, linking the two."""
    for spine in ax.spines.values():
        spine.set_edgecolor(WINDOW_COLOUR)
        spine.set_linewidth(1.5)


def _crop(image: np.ndarray, window: Window) -> np.ndarray:
    row0, col0, size = window
    return image[row0 : row0 + size, col0 : col0 + size]


def _caption_lines(name: str, caption: str | None) -> list[str]:
    lines = textwrap.wrap(name, width=34) or [""]
    return lines + ([caption] if caption else [])


def _caption(fig: Figure, x: float, top: float, lines: list[str]) -> None:
    """Centred caption whose first line's top is at ``top`` inches (x in inches)."""
    fw, fh = fig.get_size_inches()
    fig.text(
        x / fw, top / fh, "\n".join(lines), ha="center", va="top", fontsize=CAPTION_PT,
        linespacing=1.1,
    )  # fmt: skip


def _title(fig: Figure, title: str) -> None:
    fw, fh = fig.get_size_inches()
    fig.text(0.5, 1 - 0.12 / fh, title, ha="center", va="top", fontsize=TITLE_PT, fontweight="bold")


def _check_same_shape(hr: np.ndarray, images: Mapping[str, np.ndarray]) -> None:
    if hr.ndim != 2:
        raise ValueError(f"hr must be a 2D slice, got shape {hr.shape}")
    for key, image in images.items():
        if image.shape != hr.shape:
            raise ValueError(f"{key}: shape {image.shape} differs from HR's {hr.shape}")


# --------------------------------------------------------------------------- figures


def example_figure(
    hr: np.ndarray,
    lr_display: np.ndarray,
    outputs: Mapping[str, np.ndarray],
    captions: Mapping[str, str],
    window: Window,
    title: str,
    lr_label: str = "LR (nearest-neighbour display)",
) -> Figure:
    """Fig. 2: HR, LR, then every method (in ``outputs`` order), up to four panels a row.

    Each panel is the whole (displayed) slice with the zoom ``window`` outlined, the window
    enlarged below it, and a caption: the method's name and ``captions[key]`` (e.g.
    ``"PSNR 37.12 dB / SSIM 0.9812"``; ``captions`` may also hold ``"hr"`` and ``"lr"``).
    Every panel uses the same grey scale, 0 to the HR's 99.5th percentile, so grey levels
    compare across panels.  ``lr_display`` is the LR image enlarged to the HR size.
    """
    images = {"hr": hr, "lr": lr_display, **outputs}
    _check_same_shape(hr, images)
    names = {"hr": "HR (reference)", "lr": lr_label} | {k: method_label(k) for k in outputs}
    return _panel_figure(images, names, captions, window, title, _grey_range(hr))


def before_after_figure(
    before: np.ndarray,
    after: np.ndarray,
    mask: np.ndarray | None,
    names: tuple[str, str],
    captions: tuple[str, str],
    title: str,
) -> Figure:
    """A user's slice before and after ``rrlsrn upscale``, on the output's grid.

    ``before`` is enlarged by pixel repetition (each input voxel shown as the block of
    output voxels it covers), so both panels show the same field of view; the display
    crop and zoom window follow Fig. 2's rules on the output, over ``mask`` (output grid).
    """
    factor = after.shape[0] // before.shape[0]
    if before.ndim != 2 or after.shape != (before.shape[0] * factor, before.shape[1] * factor):
        raise ValueError(
            f"after {after.shape} is not an integer upscaling of before {before.shape}"
        )
    enlarged = before.repeat(factor, axis=0).repeat(factor, axis=1)
    box, _, window, _ = _prepare_view(after, mask)
    images = {"before": _cut(enlarged, box), "after": _cut(after, box)}
    return _panel_figure(
        images,
        dict(zip(images, names, strict=True)),
        dict(zip(images, captions, strict=True)),
        window,
        title,
        _grey_range(images["before"]),
    )


def _panel_figure(
    images: Mapping[str, np.ndarray],
    names: Mapping[str, str],
    captions: Mapping[str, str],
    window: Window,
    title: str,
    grey: tuple[float, float],
) -> Figure:
    """Panels of equal-shape images, up to four a row: each whole, with ``window`` outlined,
    the window enlarged below, then its name and caption; one grey scale ``grey``."""
    panels = [(k, _caption_lines(names[k], captions.get(k))) for k in images]
    H, W = next(iter(images.values())).shape
    img_h = PANEL_W * H / W
    cap_h = max(len(lines) for _, lines in panels) * LINE_H + 0.12
    row_h = img_h + 0.06 + PANEL_W + 0.05 + cap_h
    ncols = min(PER_ROW, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    width = 2 * MARGIN + ncols * PANEL_W + (ncols - 1) * GAP
    height = TITLE_H + nrows * row_h + (nrows - 1) * GAP + MARGIN
    fig = Figure(figsize=(width, height))
    _title(fig, title)
    vmin, vmax = grey
    for i, (key, lines) in enumerate(panels):
        r, c = divmod(i, ncols)
        left = MARGIN + c * (PANEL_W + GAP)
        top = height - TITLE_H - r * (row_h + GAP)
        full = _image_axes(fig, left, top - img_h, PANEL_W, img_h)
        _show(full, images[key], cmap="gray", vmin=vmin, vmax=vmax)
        _outline(full, window)
        zoom_top = top - img_h - 0.06
        zoom = _image_axes(fig, left, zoom_top - PANEL_W, PANEL_W, PANEL_W)
        _show(zoom, _crop(images[key], window), cmap="gray", vmin=vmin, vmax=vmax)
        _frame(zoom)
        _caption(fig, left + PANEL_W / 2, zoom_top - PANEL_W - 0.05, lines)
    return fig


def error_map_figure(
    hr: np.ndarray,
    outputs: Mapping[str, np.ndarray],
    captions: Mapping[str, str],
    title: str,
) -> Figure:
    """Fig. 3: ``|SR - HR|`` per method on ONE colour scale, with one colour bar.

    The scale runs from 0 to the 99.5th percentile of all methods' errors pooled (at least
    1e-6), in a perceptually uniform colormap, so equal colours mean equal errors in every
    panel.
    """
    if not outputs:
        raise ValueError("no outputs to draw error maps of")
    _check_same_shape(hr, outputs)
    errors = {k: np.abs(np.asarray(v, np.float64) - hr) for k, v in outputs.items()}
    norm = Normalize(vmin=0.0, vmax=_error_vmax(list(errors.values())))
    panels = [(k, _caption_lines(method_label(k), captions.get(k))) for k in errors]
    H, W = hr.shape
    img_h = PANEL_W * H / W
    cap_h = max(len(lines) for _, lines in panels) * LINE_H + 0.12
    row_h = img_h + 0.05 + cap_h
    ncols = min(PER_ROW, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    bar_h = BAR_H
    width = 2 * MARGIN + ncols * PANEL_W + (ncols - 1) * GAP
    height = TITLE_H + nrows * row_h + (nrows - 1) * GAP + bar_h + MARGIN
    fig = Figure(figsize=(width, height))
    _title(fig, title)
    image = None
    for i, (key, lines) in enumerate(panels):
        r, c = divmod(i, ncols)
        left = MARGIN + c * (PANEL_W + GAP)
        top = height - TITLE_H - r * (row_h + GAP)
        ax = _image_axes(fig, left, top - img_h, PANEL_W, img_h)
        image = ax.imshow(
            errors[key], cmap=ERROR_CMAP, norm=norm, interpolation="nearest", aspect="auto"
        )
        _caption(fig, left + PANEL_W / 2, top - img_h - 0.05, lines)
    bar_w = min(width - 2 * MARGIN, 4.0)
    cax = fig.add_axes(
        (
            (width - bar_w) / 2 / width,
            (MARGIN + BAR_H - 0.15) / height,
            bar_w / width,
            0.15 / height,
        )
    )
    bar = fig.colorbar(image, cax=cax, orientation="horizontal")
    bar.set_label(ERROR_LABEL, fontsize=CAPTION_PT)
    bar.ax.tick_params(labelsize=CAPTION_PT - 1)
    return fig


def gdl_figure(
    hr: np.ndarray,
    with_gdl: np.ndarray,
    without_gdl: np.ndarray,
    window: Window,
    captions: Mapping[str, str],
    title: str,
) -> Figure:
    """Fig. 4: HR, RRLSRN without GDL and with GDL, zoomed on ``window``, with error maps.

    Top row: the three crops of ``window`` on the HR grey scale.  Bottom row: the whole
    (displayed) HR slice with the window outlined, then ``|SR - HR|`` of the two crops on
    one shared scale (0 to the pooled 99.5th percentile) with a colour bar.  ``captions``
    is keyed ``"rrlsrn"`` (with GDL) and ``"rrlsrn_no_gdl"`` (without); ``"hr"`` optional.
    """
    _check_same_shape(hr, {WITH_GDL: with_gdl, WITHOUT_GDL: without_gdl})
    crops = {"hr": hr, WITHOUT_GDL: without_gdl, WITH_GDL: with_gdl}
    crops = {k: _crop(np.asarray(v, np.float64), window) for k, v in crops.items()}
    errors = {k: np.abs(crops[k] - crops["hr"]) for k in (WITHOUT_GDL, WITH_GDL)}
    names = {"hr": "HR (reference)", WITHOUT_GDL: "RRLSRN without GDL", WITH_GDL: "RRLSRN with GDL"}
    top_lines = {k: _caption_lines(names[k], captions.get(k)) for k in crops}
    bottom_lines = {
        "hr": ["HR (zoom window outlined)"],
        WITHOUT_GDL: ["|SR − HR|, without GDL"],
        WITH_GDL: ["|SR − HR|, with GDL"],
    }
    H, W = hr.shape
    full_h = PANEL_W * H / W
    cap1 = max(len(v) for v in top_lines.values()) * LINE_H + 0.12
    cap2 = LINE_H + 0.12
    row1 = PANEL_W + 0.05 + cap1
    row2 = max(full_h, PANEL_W) + 0.05 + cap2
    bar_h = BAR_H
    width = 2 * MARGIN + 3 * PANEL_W + 2 * GAP
    height = TITLE_H + row1 + GAP + row2 + bar_h + MARGIN
    fig = Figure(figsize=(width, height))
    _title(fig, title)
    vmin, vmax = _grey_range(hr)
    norm = Normalize(vmin=0.0, vmax=_error_vmax(list(errors.values())))
    top = height - TITLE_H
    image = None
    for c, key in enumerate(crops):
        left = MARGIN + c * (PANEL_W + GAP)
        ax = _image_axes(fig, left, top - PANEL_W, PANEL_W, PANEL_W)
        _show(ax, crops[key], cmap="gray", vmin=vmin, vmax=vmax)
        _frame(ax)
        _caption(fig, left + PANEL_W / 2, top - PANEL_W - 0.05, top_lines[key])
        top2 = top - row1 - GAP
        if key == "hr":
            ax = _image_axes(fig, left, top2 - full_h, PANEL_W, full_h)
            _show(ax, hr, cmap="gray", vmin=vmin, vmax=vmax)
            _outline(ax, window)
            below = top2 - full_h
        else:
            ax = _image_axes(fig, left, top2 - PANEL_W, PANEL_W, PANEL_W)
            image = ax.imshow(
                errors[key], cmap=ERROR_CMAP, norm=norm, interpolation="nearest", aspect="auto"
            )
            below = top2 - PANEL_W
        _caption(fig, left + PANEL_W / 2, below - 0.05, bottom_lines[key])
    bar_left = MARGIN + PANEL_W + GAP + 0.2
    bar_w = 2 * PANEL_W + GAP - 0.4
    cax = fig.add_axes(
        (bar_left / width, (MARGIN + BAR_H - 0.15) / height, bar_w / width, 0.15 / height)
    )
    bar = fig.colorbar(image, cax=cax, orientation="horizontal")
    bar.set_label(ERROR_LABEL, fontsize=CAPTION_PT)
    bar.ax.tick_params(labelsize=CAPTION_PT - 1)
    return fig


def shipped_step(history: pd.DataFrame) -> int:
    """The step of the shipped weights in their training history: the row marked
    ``shipped``, or without that column the first epoch with the highest validation PSNR
    (the trainer keeps a later epoch only when it is better)."""
    if "shipped" in history:
        return int(history.loc[history["shipped"].astype(bool), "step"].iloc[0])
    return int(history.loc[history["val_psnr"].astype(float).idxmax(), "step"])


def joined_curve(log: pd.DataFrame | None, history: pd.DataFrame | None) -> pd.DataFrame:
    """A run's log on one step axis with the shipped weights' history it started from:
    the history's rows (``part`` shipped), then the run's steps counted from the shipped
    step (``part`` run).  Either may be None (no history; a run that trains nothing)."""
    parts = []
    start = 0
    if history is not None:
        start = shipped_step(history)
        parts.append(history.assign(part="shipped"))
    if log is not None:
        parts.append(log.assign(step=log["step"] + start, part="run"))
    if not parts:
        raise ValueError("neither a training log nor a shipped history given")
    return pd.concat(parts, ignore_index=True)


def _psnr_gain(curve: pd.DataFrame) -> pd.Series | None:
    """Validation PSNR minus bicubic's on the same slices; None without bicubic's column."""
    if "val_bicubic_psnr" not in curve or curve["val_bicubic_psnr"].isna().any():
        return None
    return curve["val_psnr"].astype(float) - curve["val_bicubic_psnr"].astype(float)


def training_curves_figure(
    logs: Mapping[str, pd.DataFrame], histories: Mapping[str, pd.DataFrame] | None = None
) -> Figure:
    """Training loss (log scale) and validation PSNR over bicubic's on the same slices,
    one line per model, against training step.

    A model whose weights were shipped (``histories``: their ``history.csv``) is drawn
    from the start of its pretraining: the history (thin), a diamond where the shipped
    weights end, then this run's steps from there (thick, ``logs``), if it trained.  The
    PSNR panel shows the gain over bicubic so that pretraining and this run, validated
    on different slices, share one scale; a log without bicubic's column (written before
    the trainer kept it) is left out of that panel and named in it.
    """
    histories = histories or {}
    keys = list(dict.fromkeys([*logs, *histories]))
    if not keys:
        raise ValueError("no training logs given")
    tables = [t for t in [*logs.values(), *histories.values()] if "loss" in t]
    has_loss = any(np.isfinite(t["loss"].astype(float)).any() for t in tables)
    fig = Figure(figsize=(10.0, 4.2) if has_loss else (7.0, 4.2), layout="constrained")
    # a run that trained nothing, shipped without logged losses, gets the PSNR panel only
    ax_loss, ax_psnr = fig.subplots(1, 2) if has_loss else (None, fig.subplots())
    no_reference = []
    for number, key in enumerate(keys):
        log, history = logs.get(key), histories.get(key)
        for table in (log, history):
            missing = [c for c in LOG_COLUMNS if table is not None and c not in table.columns]
            if missing:
                raise ValueError(f"training log of {key!r} lacks columns {missing}")
        curve = joined_curve(log, history)
        label, color = method_label(key), f"C{number % 10}"
        shipped, run = curve["part"] == "shipped", curve["part"] == "run"
        for rows, width in ((shipped, 0.9), (run, 2.0)) if ax_loss else ():
            loss = curve[rows & np.isfinite(curve["loss"].astype(float))]
            ax_loss.plot(loss["step"], loss["loss"], lw=width, color=color)
        gain = _psnr_gain(curve)
        if gain is None:
            no_reference.append(label)
            continue
        ax_psnr.plot(curve.loc[shipped, "step"], gain[shipped], lw=0.9, color=color,
                     label=None if run.any() else label)  # fmt: skip
        end = shipped & (curve["step"] == (shipped_step(history) if history is not None else -1))
        if run.any():  # the run, joined to the shipped checkpoint it started from
            steps = pd.concat([curve.loc[end, "step"], curve.loc[run, "step"]])
            ax_psnr.plot(steps, pd.concat([gain[end], gain[run]]), lw=2.0, color=color,
                         marker="o" if run.sum() <= 30 else None, ms=3, label=label)  # fmt: skip
        if end.any():
            ax_psnr.plot(curve.loc[end, "step"], gain[end], marker="D", ms=6, mfc="white",
                         color=color, ls="none")  # fmt: skip
    ax_psnr.axhline(0.0, color="0.4", lw=1.0, ls="--", label="bicubic (same slices)")
    if histories:
        ax_psnr.plot([], [], marker="D", ms=6, mfc="white", color="0.3", ls="none",
                     label="shipped weights end")  # fmt: skip
    if no_reference:
        ax_psnr.text(0.02, 0.02, "no bicubic reference in the log of: " + ", ".join(no_reference),
                     transform=ax_psnr.transAxes, fontsize=CAPTION_PT - 1)  # fmt: skip
    xlabel = "training step"
    if histories:
        xlabel += " (pretraining, then this run)" if logs else " (pretraining)"
    if ax_loss:
        ax_loss.set_yscale("log")
        ax_loss.set_ylabel("training loss (log scale)")
        ax_loss.set_title("Training loss", fontsize=TITLE_PT)
    ax_psnr.set_ylabel("validation PSNR − bicubic (dB)")
    ax_psnr.set_title("Validation PSNR over bicubic, same slices", fontsize=TITLE_PT)
    for ax in (a for a in (ax_loss, ax_psnr) if a):
        ax.set_xlabel(xlabel)
        ax.grid(True, which="major", alpha=0.3)
    # one legend below both plots, where it cannot hide a curve
    handles, labels = ax_psnr.get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="outside lower center", ncols=min(len(labels), 5 if ax_loss else 3),
        fontsize=CAPTION_PT, frameon=False,
    )  # fmt: skip
    return fig


def augmentation_figure(hr: np.ndarray, settings: Any, seed: int = 0) -> Figure:
    """One HR slice and what each intensity augmentation of ``settings`` (a
    TrainSettings, :mod:`rrlsrn.augment`) makes of it, then all of them together, as the
    trainer applies them (every augmentation forced on, at the settings' strength)."""
    import dataclasses

    import torch

    from rrlsrn.augment import AUGMENT_FIELDS, augment_intensity

    if hr.ndim != 2:
        raise ValueError(f"hr must be a 2D slice, got shape {hr.shape}")
    on = [k for k in AUGMENT_FIELDS if getattr(settings, k)]
    if not on:
        raise ValueError("the settings switch every intensity augmentation off")
    probability = {"augment_invert", "augment_remap"}
    panels = {"HR slice (T1w)": hr}
    x = torch.from_numpy(np.ascontiguousarray(hr, np.float32))[None, None]
    off = {k: 0.0 for k in AUGMENT_FIELDS}
    for key in [*on, "all"]:
        chosen = on if key == "all" else [key]
        values = {k: (1.0 if k in probability else getattr(settings, k)) for k in chosen}
        one = dataclasses.replace(settings, **{**off, **values})
        gen = torch.Generator().manual_seed(seed)
        title = "all of them" if key == "all" else f"{key.removeprefix('augment_')} "
        if key != "all":
            title += "(p = 1)" if key in probability else f"{getattr(settings, key)}"
        panels[title] = augment_intensity(x, one, gen)[0, 0].numpy()
    fig = Figure(figsize=(2.0 * len(panels), 2.4), layout="constrained")
    for ax, (title, image) in zip(fig.subplots(1, len(panels)), panels.items(), strict=True):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=CAPTION_PT)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def _stem(stem: PathLike) -> str:
    """``stem`` without a trailing ``.png`` / ``.pdf`` (other dots, e.g. in names, stay)."""
    text = os.fspath(stem)
    for ext in (".png", ".pdf"):
        if text.endswith(ext):
            return text[: -len(ext)]
    return text


def save_figure(fig: Figure, stem: PathLike) -> list[Path]:
    """Write ``stem.png`` (150 dpi) and ``stem.pdf``; both or neither.

    Both are rendered to temporary files in the destination folder first and renamed only
    when both succeeded, so a failure leaves earlier outputs untouched and no temporary file
    behind.  The PDF carries no creation date, so reruns give identical files.
    """
    base = _stem(stem)
    paths = [Path(base + ".png"), Path(base + ".pdf")]
    with ExitStack() as stack:
        png = stack.enter_context(atomic_path(paths[0], suffix=".png"))
        pdf = stack.enter_context(atomic_path(paths[1], suffix=".pdf"))
        fig.savefig(png, format="png", dpi=150)
        fig.savefig(pdf, format="pdf", metadata={"CreationDate": None})
    return paths


# --------------------------------------------------------------------------- file entry points


def read_training_log(path: PathLike) -> pd.DataFrame:
    """A ``train_log.csv``; a file lacking ``step``, ``loss`` or ``val_psnr`` is named."""
    return read_table(path, LOG_COLUMNS, "training log", sep=",")


def _pick(data: Mapping[str, np.ndarray], path: PathLike, key: str, number: int) -> np.ndarray:
    """The 2D slice numbered ``number`` (by ``slice_index``) of array ``key`` of a loaded npz."""
    missing = [k for k in (key, "slice_index") if k not in data]
    if missing:
        raise ValueError(f"{path}: lacks the arrays {missing}")
    where = np.flatnonzero(np.asarray(data["slice_index"]) == number)
    if where.size == 0:
        raise ValueError(f"{path}: has no slice {number} (slice_index)")
    return np.asarray(data[key][where[0]])


def _load_hr(path: PathLike, slice_number: int) -> tuple[np.ndarray, np.ndarray | None]:
    data = load_npz(path)
    hr = _pick(data, path, "hr", slice_number).astype(np.float64)
    mask = None
    if "mask" in data:
        mask = _pick(data, path, "mask", slice_number).astype(bool)
        if mask.shape != hr.shape:
            raise ValueError(f"{path}: mask shape {mask.shape} differs from hr's {hr.shape}")
    return hr, mask


def _load_sr(path: PathLike, slice_number: int, shape: tuple[int, ...]) -> np.ndarray:
    sr = _pick(load_npz(path), path, "sr", slice_number).astype(np.float64)
    if sr.shape != shape:
        raise ValueError(f"{path}: slice {slice_number} has shape {sr.shape}, HR has {shape}")
    return sr


def lr_display(hr: np.ndarray, degradation: Mapping[str, Any], scale: int) -> np.ndarray:
    """The LR image of ``hr`` by the configured operator, enlarged by pixel repetition.

    Nearest-neighbour enlargement keeps the LR pixels visibly coarse and the panel the same
    size as the others; an HR side not divisible by ``scale`` is cropped before degrading
    and the last LR row / column repeated to fill it.
    """
    from rrlsrn.degrade import make_degradation

    params = dict(degradation)
    name = params.pop("name", "bicubic")
    H, W = hr.shape
    h, w = H // scale * scale, W // scale * scale
    x = torch.as_tensor(np.ascontiguousarray(hr[:h, :w]), dtype=torch.float32)[None]
    lr = make_degradation(name, **params)(x, scale)[0].numpy().astype(np.float64)
    big = np.repeat(np.repeat(lr, scale, axis=0), scale, axis=1)
    return np.pad(big, ((0, H - h), (0, W - w)), mode="edge")


def metric_caption(metrics: pd.DataFrame, method: str, subject: str, slice_number: int) -> str:
    """``"PSNR 37.12 dB / SSIM 0.9812"`` from the metrics row of this method and slice."""
    rows = metrics[
        (metrics["method"] == method)
        & (metrics["subject"].astype(str) == subject)
        & (metrics["slice"] == slice_number)
    ]
    if rows.empty:
        return "(no metrics row)"
    row = rows.iloc[0]
    parts = []
    if np.isfinite(float(row["psnr"])):
        parts.append(f"PSNR {float(row['psnr']):.2f} dB")
    if "ssim" in row and np.isfinite(float(row["ssim"])):
        parts.append(f"SSIM {float(row['ssim']):.4f}")
    return " / ".join(parts) or "(no metrics)"


def _choose(
    metrics: pd.DataFrame, dataset: str, method: str, candidates: Sequence[str]
) -> tuple[str, str, int]:
    """(method used, subject, slice) by rule 1, falling back to the last candidate present."""
    present = set(metrics.loc[metrics["dataset"] == dataset, "method"])
    if method not in present:
        fallback = [m for m in candidates if m in present]
        if not fallback:
            raise ValueError(
                f"no metric rows of {method!r} (nor of {list(candidates)}) for dataset {dataset!r}"
            )
        method = fallback[-1]
    return (method, *choose_example_slice(metrics, dataset, method))


def _subject_file(files: Mapping[str, PathLike], subject: str, what: str) -> PathLike:
    if subject not in files:
        raise ValueError(f"no {what} file for subject {subject!r} (have {sorted(files)})")
    return files[subject]


def _prepare_view(
    hr: np.ndarray, mask: np.ndarray | None
) -> tuple[Box, np.ndarray | None, Window, Window]:
    """Display crop, cropped mask, zoom window in displayed and in whole-slice coordinates."""
    box = choose_display_crop(mask, hr.shape)
    r0, r1, c0, c1 = box
    mask_c = None if mask is None else mask[r0:r1, c0:c1]
    window = choose_zoom_window(hr[r0:r1, c0:c1], mask_c)
    return box, mask_c, window, (window[0] + r0, window[1] + c0, window[2])


def _cut(image: np.ndarray, box: Box) -> np.ndarray:
    return image[box[0] : box[1], box[2] : box[3]]


def _rules(method: str) -> dict[str, str]:
    return {
        "slice": SLICE_RULE.format(method=method_label(method), metric="PSNR"),
        "crop": CROP_RULE.format(margin=0.15, threshold=0.5),
        "window": WINDOW_RULE.format(fraction=0.25),
    }


def _example_title(
    dataset: str, subject: str, slice_number: int, method: str, scale: int | None
) -> str:
    at = f"x{scale}, " if scale else ""
    return f"{dataset} — {subject}, slice {slice_number} ({at}median {method_label(method)} PSNR)"


def _choice(
    dataset: str,
    method: str,
    subject: str,
    slice_number: int,
    data_path: PathLike,
    box: Box,
    window: Window,
) -> dict[str, Any]:
    """What a figure shows and by which rules, for its JSON record."""
    return {
        "dataset": dataset,
        "method": method,
        "metric": "psnr",
        "subject": subject,
        "slice": slice_number,
        "data_file": os.fspath(data_path),
        "crop": dict(zip(("row0", "row1", "col0", "col1"), box, strict=True)),
        "window": dict(zip(("row0", "col0", "size"), window, strict=True)),
        "rules": _rules(method),
    }


def dataset_figures(
    dataset: str,
    metrics_files: Sequence[PathLike],
    data_files: Mapping[str, PathLike],
    sr_files: Mapping[str, Mapping[str, PathLike]],
    degradation: Mapping[str, Any],
    scale: int,
    example_out: PathLike,
    error_out: PathLike,
    method: str = "rrlsrn",
) -> dict[str, Any]:
    """Fig. 2 and Fig. 3 of one dataset, for the slice chosen by the median rule.

    The slice is the median-PSNR test slice of ``method`` (the last method of ``sr_files``
    with metric rows when ``method`` has none); only that subject's files are read.  Both
    figures are saved as PNG and PDF; the choice (subject, slice, display crop, zoom window,
    rules as sentences) is returned and written to ``example_out + ".json"``.
    """
    metrics = load_metrics(metrics_files)
    method, subject, slice_number = _choose(metrics, dataset, method, list(sr_files))
    data_path = _subject_file(data_files, subject, "prepared data")
    hr, mask = _load_hr(data_path, slice_number)
    outputs = {}
    for key, files in sr_files.items():
        path = _subject_file(files, subject, f"{key} SR")
        outputs[key] = _load_sr(path, slice_number, hr.shape)
    lr = lr_display(hr, degradation, scale)
    box, _, window, window_full = _prepare_view(hr, mask)
    captions = {k: metric_caption(metrics, k, subject, slice_number) for k in outputs}
    title = _example_title(dataset, subject, slice_number, method, scale)
    cropped = {k: _cut(v, box) for k, v in outputs.items()}
    example = example_figure(
        _cut(hr, box), _cut(lr, box), cropped, captions, window, title,
        lr_label=f"LR ×{scale} ({degradation.get('name', 'bicubic')}, nearest display)",
    )  # fmt: skip
    errors = error_map_figure(_cut(hr, box), cropped, captions, title)
    paths = save_figure(example, example_out) + save_figure(errors, error_out)
    choice = _choice(dataset, method, subject, slice_number, data_path, box, window_full)
    choice |= {"methods": list(outputs), "figures": [os.fspath(p) for p in paths]}
    write_text_atomic(_stem(example_out) + ".json", json.dumps(choice, indent=2) + "\n")
    return choice


def gdl_comparison(
    dataset: str,
    metrics_files: Sequence[PathLike],
    data_files: Mapping[str, PathLike],
    sr_with: Mapping[str, PathLike],
    sr_without: Mapping[str, PathLike],
    degradation: Mapping[str, Any] | None = None,
    scale: int | None = None,
    out: PathLike = "fig4_gdl",
    choice_out: PathLike | None = None,
) -> dict[str, Any]:
    """Fig. 4 of one dataset: RRLSRN with vs without GDL on the median-RRLSRN-PSNR slice.

    Slice by rule 1 on the ``rrlsrn`` rows (``rrlsrn_no_gdl`` rows when those are
    absent); zoom window by :func:`choose_zoom_window` on the (displayed) HR.  Captions come
    from whichever of the two methods' metric rows the files hold.  ``degradation`` and
    ``scale`` are only recorded in the returned choice (the figure has no LR panel).  The
    choice is also written as JSON to ``choice_out`` when given.
    """
    metrics = load_metrics(metrics_files)
    method, subject, slice_number = _choose(metrics, dataset, WITH_GDL, [WITHOUT_GDL])
    data_path = _subject_file(data_files, subject, "prepared data")
    hr, mask = _load_hr(data_path, slice_number)
    with_gdl = _load_sr(_subject_file(sr_with, subject, "RRLSRN SR"), slice_number, hr.shape)
    without = _load_sr(
        _subject_file(sr_without, subject, "RRLSRN without GDL SR"), slice_number, hr.shape
    )
    box, _, window, window_full = _prepare_view(hr, mask)
    captions = {
        k: metric_caption(metrics, k, subject, slice_number) for k in (WITH_GDL, WITHOUT_GDL)
    }
    title = _example_title(dataset, subject, slice_number, method, scale)
    fig = gdl_figure(
        _cut(hr, box), _cut(with_gdl, box), _cut(without, box), window, captions, title
    )
    paths = save_figure(fig, out)
    choice = _choice(dataset, method, subject, slice_number, data_path, box, window_full)
    choice |= {
        "degradation": dict(degradation) if degradation is not None else None,
        "scale": scale,
        "figures": [os.fspath(p) for p in paths],
    }
    if choice_out is not None:
        write_text_atomic(choice_out, json.dumps(choice, indent=2) + "\n")
    return choice


def training_curves(
    log_files: Mapping[str, PathLike],
    out: PathLike,
    history_files: Mapping[str, PathLike | None] | None = None,
) -> list[Path]:
    """Training-curve figure of every model's ``train_log.csv``, joined to the shipped
    weights' ``history.csv`` it started from (``history_files``, None where it did not),
    saved as PNG and PDF."""
    logs = {key: read_training_log(path) for key, path in log_files.items()}
    histories = {
        key: read_training_log(path) for key, path in (history_files or {}).items() if path
    }
    return save_figure(training_curves_figure(logs, histories), out)
