"""Figures: the slice / crop / window rules, the figure contents and the file entry points."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from rrlsrn import figures
from rrlsrn.figures import (
    choose_display_crop,
    choose_example_slice,
    choose_zoom_window,
    dataset_figures,
    error_map_figure,
    example_figure,
    gdl_comparison,
    gdl_figure,
    gradient_magnitude,
    save_figure,
    training_curves,
    training_curves_figure,
)
from rrlsrn.weights import WEIGHTS_DIR

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
METHODS = ["bicubic", "srcnn", "rrlsrn_no_gdl", "rrlsrn"]


# --------------------------------------------------------------------------- helpers


def frame(rows: list[tuple[str, str, int, float]], dataset: str = "d") -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"method": m, "dataset": dataset, "subject": s, "slice": k, "psnr": v}
            for m, s, k, v in rows
        ]
    )


def images(fig: Figure) -> list[AxesImage]:
    return [im for ax in fig.axes for im in ax.get_images()]


def texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.texts]


def assert_texts_fit(fig: Figure) -> None:
    """Figure texts lie inside the figure, do not overlap each other and are >= 8 pt."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    boxes = [t.get_window_extent(renderer) for t in fig.texts if t.get_text()]
    width, height = fig.bbox.width, fig.bbox.height
    for box in boxes:
        assert box.x0 >= -0.5 and box.y0 >= -0.5, box
        assert box.x1 <= width + 0.5 and box.y1 <= height + 0.5, box
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    # texts and image axes do not overlap either
    for ax, box in itertools.product(fig.axes, boxes):
        if ax.get_images():
            assert not ax.get_window_extent(renderer).overlaps(box)
    assert all(t.get_fontsize() >= 8 for t in fig.texts)


def phantom(n: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A disc with a bright off-centre square inside it; (image, disc mask)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    mask = (yy - n / 2) ** 2 + (xx - n / 2) ** 2 < (n / 2.5) ** 2
    hr = 0.4 * mask + 0.02 * rng.random((n, n))
    hr[n // 2 : n // 2 + 6, n // 2 - 8 : n // 2 - 2] = 0.9
    return hr.astype(np.float32), mask


def write_dataset(tmp_path: Path, n: int = 32, subjects=("s1", "s2")) -> dict:
    """Prepared data, SR outputs and metric TSVs for a tiny fake dataset."""
    data, sr, metric_files = {}, {m: {} for m in METHODS}, []
    rng = np.random.default_rng(1)
    for j, subject in enumerate(subjects):
        hr = np.stack([phantom(n, seed=10 * j + k)[0] for k in range(3)])
        mask = np.stack([phantom(n)[1]] * 3)
        slices = np.array([4, 5, 6], dtype=np.int32) + 10 * j
        path = tmp_path / "data" / f"{subject}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, hr=hr, mask=mask, slice_index=slices, spacing=np.ones(2, np.float32))
        data[subject] = path
        rows = []
        for i, method in enumerate(METHODS):
            out = hr + rng.normal(0, 0.05 / (i + 1), hr.shape).astype(np.float32)
            p = tmp_path / "sr" / method / f"{subject}.npz"
            p.parent.mkdir(parents=True, exist_ok=True)
            np.savez(p, sr=out, slice_index=slices)
            sr[method][subject] = p
            for k, s in enumerate(slices):
                psnr = 30.0 + i + 0.1 * k + j
                rows.append(
                    {
                        "method": method, "dataset": "toy", "subject": subject,
                        "slice": int(s), "psnr": psnr, "ssim": 0.9 + 0.01 * i,
                        "psnr_mask": np.nan, "ssim_mask": np.nan,
                    }
                )  # fmt: skip
        tsv = tmp_path / "metrics" / f"{subject}.tsv"
        tsv.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(tsv, sep="\t", index=False)
        metric_files.append(tsv)
    return {"data": data, "sr": sr, "metrics": metric_files}


def assert_png_pdf(paths: list[Path]) -> None:
    png, pdf = paths
    assert png.suffix == ".png" and pdf.suffix == ".pdf"
    assert png.read_bytes()[:8] == PNG_MAGIC
    image = mpimg.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert not [p for p in png.parent.iterdir() if ".tmp" in p.name]


# --------------------------------------------------------------------------- rules


def test_choose_example_slice_odd_count_is_the_median():
    rows = [("rrlsrn", "a", 1, 30.0), ("rrlsrn", "a", 2, 34.0), ("rrlsrn", "b", 1, 31.0)]
    rows += [("bicubic", "a", 1, 31.5)]  # other methods are ignored
    assert choose_example_slice(frame(rows), "d") == ("b", 1)


def test_choose_example_slice_even_count_takes_the_lower_middle():
    rows = [("rrlsrn", "a", k, v) for k, v in [(1, 30.0), (2, 33.0), (3, 31.0), (4, 32.0)]]
    assert choose_example_slice(frame(rows), "d") == ("a", 3)
    # NaN rows do not count
    rows.append(("rrlsrn", "a", 5, float("nan")))
    assert choose_example_slice(frame(rows), "d") == ("a", 3)


def test_choose_example_slice_ties_by_subject_then_slice():
    rows = [("rrlsrn", "b", 1, 31.0), ("rrlsrn", "a", 7, 31.0), ("rrlsrn", "a", 2, 31.0)]
    assert choose_example_slice(frame(rows), "d") == ("a", 7)  # order a/2, a/7, b/1
    rows = [("rrlsrn", "b", 1, 31.0), ("rrlsrn", "a", 7, 31.0), ("rrlsrn", "a", 2, 31.0)]
    rows.append(("rrlsrn", "c", 1, 40.0))
    assert choose_example_slice(frame(rows), "d") == ("a", 7)  # lower middle of 4


def test_choose_example_slice_other_metric_and_errors():
    metrics = frame([("rrlsrn", "a", 1, 30.0), ("rrlsrn", "a", 2, 31.0)])
    metrics["ssim"] = [0.95, 0.90]
    assert choose_example_slice(metrics, "d", metric="ssim") == ("a", 2)
    with pytest.raises(ValueError, match="no psnr rows for method 'srcnn'"):
        choose_example_slice(metrics, "d", method="srcnn")
    with pytest.raises(ValueError, match="dataset 'other'"):
        choose_example_slice(metrics, "other")


def brute_force_window(hr: np.ndarray, mask: np.ndarray | None, size: int) -> float:
    grad = gradient_magnitude(hr)
    best = -np.inf
    for r in range(hr.shape[0] - size + 1):
        for c in range(hr.shape[1] - size + 1):
            if mask is not None and not mask[r + size // 2, c + size // 2]:
                continue
            best = max(best, grad[r : r + size, c : c + size].mean())
    return best


def window_score(hr: np.ndarray, window: tuple[int, int, int]) -> float:
    r, c, s = window
    return float(gradient_magnitude(hr)[r : r + s, c : c + s].mean())


def test_choose_zoom_window_finds_the_edge_region():
    hr = np.zeros((40, 40))
    hr[24:32, 4:12] = 1.0  # one sharp square, lower left
    r, c, s = choose_zoom_window(hr, None)
    assert s == 10
    assert r <= 24 and r + s >= 32 and c <= 4 and c + s >= 12  # covers the square
    assert 0 <= r <= 40 - s and 0 <= c <= 40 - s


def test_choose_zoom_window_stays_inside_the_mask():
    hr = np.zeros((40, 40))
    hr[24:32, 4:12] = 1.0
    hr[8:10, 25:35] = 0.3  # a weaker edge in the upper right
    mask = np.zeros((40, 40), bool)
    mask[:20, 20:] = True
    r, c, s = choose_zoom_window(hr, mask)
    assert mask[r + s // 2, c + s // 2]
    assert r + s <= 40 and c + s <= 40
    assert window_score(hr, (r, c, s)) == pytest.approx(brute_force_window(hr, mask, s))
    # an empty mask falls back to every window
    assert choose_zoom_window(hr, np.zeros_like(mask)) == choose_zoom_window(hr, None)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("use_mask", [False, True])
def test_choose_zoom_window_is_the_brute_force_argmax(seed, use_mask):
    rng = np.random.default_rng(seed)
    hr = rng.random((17, 23))
    mask = rng.random((17, 23)) > 0.6 if use_mask else None
    window = choose_zoom_window(hr, mask, fraction=0.3)
    assert window[2] == round(0.3 * 17)
    assert window_score(hr, window) == pytest.approx(
        brute_force_window(hr, mask, window[2]), rel=1e-12
    )


def test_choose_display_crop_only_for_small_anatomy():
    mask = np.zeros((320, 320), bool)
    mask[140:190, 150:196] = True  # fetal-like: 50 px of 320
    r0, r1, c0, c1 = choose_display_crop(mask, mask.shape)
    assert r1 - r0 == c1 - c0 == 65  # ceil(50 * 1.3), square
    assert r0 <= 140 and r1 >= 190 and c0 <= 150 and c1 >= 196
    big = np.zeros((64, 64), bool)
    big[10:50, 12:44] = True  # 40 px of 64: whole slice
    assert choose_display_crop(big, big.shape) == (0, 64, 0, 64)
    assert choose_display_crop(None, (64, 64)) == (0, 64, 0, 64)
    assert choose_display_crop(np.zeros((64, 64), bool), (64, 64)) == (0, 64, 0, 64)
    corner = np.zeros((100, 100), bool)
    corner[0:5, 95:100] = True  # the square is moved inside the slice
    r0, r1, c0, c1 = choose_display_crop(corner, corner.shape)
    assert (r0, c1) == (0, 100) and r1 - r0 == c1 - c0 == 32


# --------------------------------------------------------------------------- figures


def test_example_figure_panels_captions_and_shared_grey_scale():
    hr, _ = phantom(32)
    outputs = {m: hr + 0.01 * i for i, m in enumerate(METHODS)}
    captions = {"srcnn": "PSNR 31.00 dB / SSIM 0.9100", "rrlsrn": "PSNR 37.12 dB / SSIM 0.9812"}
    fig = example_figure(hr, hr * 0.9, outputs, captions, (4, 5, 8), "toy title")
    ims = images(fig)
    assert len(ims) == 2 * (2 + len(METHODS))  # full slice + zoom per panel
    clims = {im.get_clim() for im in ims}
    assert len(clims) == 1
    assert clims.pop() == pytest.approx((0.0, np.percentile(hr, 99.5)))
    joined = "\n".join(texts(fig))
    assert "toy title" in joined and "HR (reference)" in joined
    assert "RRLSRN\nPSNR 37.12 dB / SSIM 0.9812" in joined
    assert "SRCNN\nPSNR 31.00 dB / SSIM 0.9100" in joined
    assert "Bicubic" in joined  # no caption given: the name only
    rectangles = [p for ax in fig.axes for p in ax.patches]
    assert len(rectangles) == 2 + len(METHODS)
    assert_texts_fit(fig)
    with pytest.raises(ValueError, match="srcnn: shape"):
        example_figure(hr, hr, {"srcnn": hr[:-1]}, {}, (0, 0, 4), "t")


def test_before_after_figure_shows_the_same_field_of_view_on_one_grey_scale():
    before = np.zeros((80, 80))
    before[30:40, 34:44] = np.linspace(0.2, 1.0, 10)  # small anatomy: a crop is shown
    after = before.repeat(2, 0).repeat(2, 1) + 0.01
    mask = np.zeros((160, 160), bool)
    mask[60:80, 68:88] = True
    fig = figures.before_after_figure(
        before, after, mask, ("input stack", "upscaled"), ("1.1 mm", "0.56 mm"), "toy"
    )
    ims = images(fig)
    assert len(ims) == 4  # two panels, each whole + zoom
    full_before, _, full_after, _ = (im.get_array() for im in ims)
    # the crop around the 20-px mask: ceil(20 * 1.3) = 26 output pixels, in both panels
    assert full_before.shape == full_after.shape == (32, 32)  # min_side 32
    np.testing.assert_allclose(full_after - full_before, 0.01)  # same place, pixel for pixel
    assert len({im.get_clim() for im in ims}) == 1
    joined = "\n".join(texts(fig))
    assert "input stack\n1.1 mm" in joined and "upscaled\n0.56 mm" in joined
    assert_texts_fit(fig)
    with pytest.raises(ValueError, match="not an integer upscaling"):
        figures.before_after_figure(before, after[:-1], None, ("a", "b"), ("", ""), "t")


def test_error_map_figure_shares_one_norm_and_one_colour_bar():
    hr, _ = phantom(24)
    rng = np.random.default_rng(0)
    outputs = {m: hr + rng.normal(0, 0.02 * (i + 1), hr.shape) for i, m in enumerate(METHODS)}
    captions = {m: f"PSNR {30 + i}.00 dB" for i, m in enumerate(METHODS)}
    fig = error_map_figure(hr, outputs, captions, "errors")
    ims = images(fig)
    assert len(ims) == len(METHODS)
    assert len({id(im.norm) for im in ims}) == 1
    pooled = np.concatenate([np.abs(o - hr).ravel() for o in outputs.values()])
    assert ims[0].get_clim() == pytest.approx((0.0, np.percentile(pooled, 99.5)))
    assert {im.get_cmap().name for im in ims} == {"inferno"}
    colourbars = [ax for ax in fig.axes if ax.get_xlabel() == figures.ERROR_LABEL]
    assert len(colourbars) == 1
    assert "RRLSRN\nPSNR 33.00 dB" in texts(fig)
    assert_texts_fit(fig)
    # identical outputs: the scale still has a positive top
    fig = error_map_figure(hr, {"rrlsrn": hr}, {}, "zero")
    assert images(fig)[0].get_clim() == (0.0, 1e-6)


def test_gdl_figure_rows_and_shared_error_scale():
    hr, _ = phantom(32)
    window = (8, 8, 12)
    fig = gdl_figure(
        hr, hr + 0.01, hr - 0.05, window,
        {"rrlsrn": "PSNR 40.00 dB", "rrlsrn_no_gdl": "PSNR 26.02 dB"}, "gdl",
    )  # fmt: skip
    ims = images(fig)
    assert len(ims) == 6
    grey = [im for im in ims if im.get_cmap().name == "gray"]
    errors = [im for im in ims if im.get_cmap().name == "inferno"]
    assert len(grey) == 4 and len(errors) == 2
    assert len({im.get_clim() for im in grey}) == 1 and errors[0].norm is errors[1].norm
    assert errors[0].get_clim() == pytest.approx((0.0, 0.05))
    assert errors[0].get_array().shape == (12, 12)
    joined = "\n".join(texts(fig))
    assert "RRLSRN with GDL\nPSNR 40.00 dB" in joined
    assert "RRLSRN without GDL\nPSNR 26.02 dB" in joined
    assert len([ax for ax in fig.axes if ax.get_xlabel() == figures.ERROR_LABEL]) == 1
    assert_texts_fit(fig)


def test_training_curves_figure_axes_and_lines():
    steps = np.arange(1, 6) * 10
    logs = {
        m: pd.DataFrame(
            {
                "step": steps,
                "loss": 1.0 / steps,
                "val_psnr": 30 + np.log(steps),
                "val_bicubic_psnr": 29.0,
            }
        )  # fmt: skip
        for m in ("srcnn", "rrlsrn")
    }
    logs["rrlsrn"].loc[2, "val_psnr"] = np.nan  # a missing validation is skipped
    fig = training_curves_figure(logs)
    loss, psnr = fig.axes
    assert loss.get_yscale() == "log" and psnr.get_ylabel() == "validation PSNR − bicubic (dB)"
    # per model: shipped and run segments (loss); run segment (PSNR); plus bicubic's zero
    assert len(loss.lines) == 4 and len(psnr.lines) == 2 + 2 + 1
    srcnn_gain = [line for line in psnr.lines if line.get_label() == "SRCNN"][0]
    assert np.allclose(srcnn_gain.get_ydata(), 1 + np.log(steps))  # PSNR minus 29 dB
    (legend,) = fig.legends  # one legend for both plots, outside them
    assert [t.get_text() for t in legend.get_texts()] == [
        "SRCNN",
        "RRLSRN",
        "bicubic (same slices)",
    ]
    assert loss.get_legend() is None and psnr.get_legend() is None
    with pytest.raises(ValueError, match="lacks columns"):
        training_curves_figure({"x": pd.DataFrame({"step": [1]})})


def test_training_curves_join_the_shipped_history_at_the_shipped_step():
    # pretraining to step 2000, best (shipped) at 1500; this run fine-tunes 200 steps from it
    history = pd.DataFrame(
        {"step": [500, 1000, 1500, 2000], "loss": np.nan, "val_psnr": [38.0, 39.0, 40.0, 39.5],
         "val_bicubic_psnr": 36.0}
    )  # fmt: skip
    log = pd.DataFrame({"step": [100, 200], "loss": [0.02, 0.01], "val_psnr": [37.5, 37.6],
                        "val_bicubic_psnr": 35.0})  # fmt: skip
    assert figures.shipped_step(history) == 1500
    # a history that marks its shipped epoch is read as marked (PSNRs rounded in a card tie)
    marked = history.assign(val_psnr=40.0, shipped=[0, 0, 0, 1])
    assert figures.shipped_step(marked) == 2000
    joined = figures.joined_curve(log, history)
    assert joined["step"].tolist() == [500, 1000, 1500, 2000, 1600, 1700]
    fig = training_curves_figure({"rrlsrn": log}, {"rrlsrn": history})
    _, psnr = fig.axes
    run = [line for line in psnr.lines if line.get_label() == "RRLSRN"][0]
    # from the shipped checkpoint (gain 4 dB) to the run's epochs (gains 2.5, 2.6 dB)
    assert run.get_xdata().tolist() == [1500, 1600, 1700]
    assert np.allclose(run.get_ydata(), [4.0, 2.5, 2.6])
    pretraining = psnr.lines[0]
    assert np.allclose(pretraining.get_ydata(), [2.0, 3.0, 4.0, 3.5])
    marker = [line for line in psnr.lines if line.get_marker() == "D" and len(line.get_xdata())]
    assert marker[0].get_xdata().tolist() == [1500]
    assert "shipped weights end" in [t.get_text() for t in fig.legends[0].get_texts()]
    assert psnr.get_xlabel() == "training step (pretraining, then this run)"


def test_training_curves_of_a_run_that_trains_nothing_show_the_shipped_histories():
    history = pd.read_csv(WEIGHTS_DIR / "rrlsrn.history.csv")
    fig = training_curves_figure({}, {"rrlsrn": history})
    (psnr,) = fig.axes  # shipped without logged losses: the PSNR panel only
    (curve,) = [line for line in psnr.lines if line.get_label() == "RRLSRN"]
    assert curve.get_xdata().tolist() == history["step"].tolist()
    expected = history["val_psnr"] - history["val_bicubic_psnr"]
    assert np.allclose(curve.get_ydata(), expected)
    (end,) = [line for line in psnr.lines if line.get_marker() == "D" and len(line.get_xdata())]
    assert end.get_xdata().tolist() == [figures.shipped_step(history)]
    assert psnr.get_xlabel() == "training step (pretraining)"
    with pytest.raises(ValueError, match="no training logs given"):
        training_curves_figure({}, {})


def test_training_curves_name_a_log_without_a_bicubic_reference():
    old = pd.DataFrame({"step": [10, 20], "loss": [0.1, 0.05], "val_psnr": [30.0, 31.0]})
    fig = training_curves_figure({"srcnn": old})
    _, psnr = fig.axes
    assert [t.get_text() for t in psnr.texts] == ["no bicubic reference in the log of: SRCNN"]
    assert len(psnr.lines) == 1  # bicubic's zero line only


# --------------------------------------------------------------------------- saving


def small_figure() -> Figure:
    fig = Figure(figsize=(1.5, 1.0))
    fig.add_subplot().plot([0, 1], [1, 0])
    return fig


def test_save_figure_writes_png_and_pdf_without_temp_files(tmp_path):
    paths = save_figure(small_figure(), tmp_path / "out" / "fig.v1")
    assert paths == [tmp_path / "out" / "fig.v1.png", tmp_path / "out" / "fig.v1.pdf"]
    png, pdf = paths
    assert png.read_bytes()[:8] == PNG_MAGIC and pdf.read_bytes()[:5] == b"%PDF-"
    assert mpimg.imread(png).shape[:2] == (150, 225)  # 150 dpi
    assert sorted(p.name for p in png.parent.iterdir()) == ["fig.v1.pdf", "fig.v1.png"]
    # a stem given with an extension is the same stem; reruns give identical PDFs
    assert save_figure(small_figure(), tmp_path / "out" / "fig.v1.png") == paths
    first = pdf.read_bytes()
    save_figure(small_figure(), tmp_path / "out" / "fig.v1")
    assert pdf.read_bytes() == first


def test_save_figure_failure_leaves_outputs_untouched(tmp_path, monkeypatch):
    (tmp_path / "fig.png").write_bytes(b"old png")
    (tmp_path / "fig.pdf").write_bytes(b"old pdf")
    original = Figure.savefig

    def failing(self, fname, *args, **kwargs):
        if kwargs.get("format") == "pdf":
            raise RuntimeError("disk full")
        return original(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        save_figure(small_figure(), tmp_path / "fig")
    assert (tmp_path / "fig.png").read_bytes() == b"old png"  # PNG was rendered, not renamed
    assert (tmp_path / "fig.pdf").read_bytes() == b"old pdf"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.pdf", "fig.png"]


# --------------------------------------------------------------------------- file entry points


def test_dataset_figures_writes_figures_and_choice(tmp_path):
    files = write_dataset(tmp_path)
    out = tmp_path / "figures"
    choice = dataset_figures(
        "toy", files["metrics"], files["data"], files["sr"], {"name": "bicubic"}, 2,
        out / "fig2_examples_toy", out / "fig3_error_maps_toy",
    )  # fmt: skip
    # rrlsrn psnr per slice: s1 33.0/33.1/33.2, s2 34.0/34.1/34.2 -> lower middle s1 slice 6
    assert (choice["subject"], choice["slice"], choice["method"]) == ("s1", 6, "rrlsrn")
    assert_png_pdf([out / "fig2_examples_toy.png", out / "fig2_examples_toy.pdf"])
    assert_png_pdf([out / "fig3_error_maps_toy.png", out / "fig3_error_maps_toy.pdf"])
    saved = json.loads((out / "fig2_examples_toy.json").read_text())
    assert saved["subject"] == "s1" and saved["slice"] == 6
    assert saved["methods"] == METHODS
    assert "median" in saved["rules"]["slice"] and saved["crop"]["row1"] == 32
    window = saved["window"]
    assert window["size"] == 8 and 0 <= window["row0"] <= 24 and 0 <= window["col0"] <= 24


def test_dataset_figures_falls_back_and_names_bad_files(tmp_path):
    files = write_dataset(tmp_path, subjects=("s1",))
    sr = {m: files["sr"][m] for m in ("bicubic", "srcnn")}
    out = tmp_path / "figures"
    args = ("toy", files["metrics"], files["data"])
    choice = dataset_figures(*args, sr, {"name": "bicubic"}, 2, out / "a", out / "b", "absent")
    assert choice["method"] == "srcnn"  # the last method of sr_files with metric rows
    # the chosen slice (s1, 5) missing from one SR file
    bad = tmp_path / "bad.npz"
    np.savez(bad, sr=np.zeros((1, 32, 32), np.float32), slice_index=np.array([99], np.int32))
    with pytest.raises(ValueError, match=r"bad\.npz: has no slice 5"):
        dataset_figures(*args, {"srcnn": {"s1": bad}}, {"name": "bicubic"}, 2, out / "c", out / "d")
    np.savez(bad, other=np.zeros(1))
    with pytest.raises(ValueError, match=r"bad\.npz: lacks the arrays \['sr', 'slice_index'\]"):
        dataset_figures(*args, {"srcnn": {"s1": bad}}, {"name": "bicubic"}, 2, out / "c", out / "d")
    tsv = tmp_path / "broken.tsv"
    tsv.write_text("method\tdataset\nrrlsrn\ttoy\n")
    with pytest.raises(ValueError, match=r"broken\.tsv: not a metrics table"):
        dataset_figures(
            "toy", [tsv], files["data"], sr, {"name": "bicubic"}, 2, out / "e", out / "f"
        )
    assert not (out / "c.png").exists()


def test_gdl_comparison_and_training_curves_write_files(tmp_path):
    files = write_dataset(tmp_path)
    out = tmp_path / "figures"
    choice = gdl_comparison(
        "toy", files["metrics"], files["data"], files["sr"]["rrlsrn"],
        files["sr"]["rrlsrn_no_gdl"], {"name": "gaussian_block", "sigma": 1.0}, 2,
        out / "fig4_gdl_toy", choice_out=out / "fig4_gdl_toy.json",
    )  # fmt: skip
    assert (choice["subject"], choice["slice"]) == ("s1", 6)
    assert_png_pdf([out / "fig4_gdl_toy.png", out / "fig4_gdl_toy.pdf"])
    assert json.loads((out / "fig4_gdl_toy.json").read_text())["slice"] == 6

    logs = {}
    for m in ("srcnn", "rrlsrn"):
        p = tmp_path / f"{m}.csv"
        pd.DataFrame(
            {"step": [10, 20], "epoch": [1, 2], "loss": [0.1, 0.05], "lr": [1e-4, 1e-4],
             "val_psnr": [30.0, 31.0], "val_bicubic_psnr": [29.0, 29.0],
             "elapsed_s": [1.0, 2.0], "patches_per_s": [9.0, 9.0]}
        ).to_csv(p, index=False)  # fmt: skip
        logs[m] = p
    history = {"rrlsrn": WEIGHTS_DIR / "rrlsrn.history.csv", "srcnn": None}
    assert_png_pdf(training_curves(logs, out / "training_curves", history))
    bad = tmp_path / "bad_log.csv"
    bad.write_text("step,loss\n1,0.1\n")
    with pytest.raises(ValueError, match=r"bad_log\.csv: not a training log"):
        training_curves({"rrlsrn": bad}, out / "x")
