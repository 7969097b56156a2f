"""Tests for ``rrlsrn upscale``: output grid, header, x4 cascade, folders and bad input."""

from __future__ import annotations

import dataclasses

import nibabel as nib
import numpy as np
import pytest
import torch

from rrlsrn import upscale as up
from rrlsrn.checkpoint import save_checkpoint
from rrlsrn.cli import main
from rrlsrn.data.embedded import EMBEDDED_ROOT
from rrlsrn.degrade import imresize, make_degradation
from rrlsrn.metrics import psnr
from rrlsrn.models import build_model

FETAL = EMBEDDED_ROOT / "mialsrtk-sub-01" / "sub-01" / "anat" / "sub-01_run-1_T2w.nii.gz"
FETAL_MASK = (
    EMBEDDED_ROOT
    / "mialsrtk-sub-01/derivatives/manual_masks/sub-01/anat/sub-01_run-1_T2w_desc-brain_mask.nii.gz"
)
CROP = (slice(112, 176), slice(120, 168), slice(9, 12))  # brain, 64 x 48 x 3 (non-square)


def downscaled_affine(affine: np.ndarray, axes, factor: int) -> np.ndarray:
    """The LR grid the degradation operator makes: LR voxel l = HR voxels f l .. f l + f - 1."""
    to_hr = np.eye(4)
    for axis in axes:
        to_hr[axis, axis] = factor
        to_hr[axis, 3] = (factor - 1) / 2
    return affine @ to_hr


def crop_of_the_fetal_sample(path, qform_shift=0.0):
    """A crop of the shipped fetal stack with both qform (code 2) and sform (code 1) set."""
    img = nib.load(str(FETAL)).slicer[CROP]
    out = nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header)
    qform = img.affine.copy()
    qform[:3, 3] += qform_shift  # a different qform shows each form is mapped on its own
    out.set_qform(qform, code=2)
    out.set_sform(img.affine, code=1)
    nib.save(out, str(path))
    return path


@pytest.fixture(scope="module")
def upscaler():
    return up.load_upscaler()


@pytest.fixture(scope="module")
def x2(tmp_path_factory, upscaler):
    folder = tmp_path_factory.mktemp("x2")
    source = crop_of_the_fetal_sample(folder / "crop.nii.gz", qform_shift=0.7)
    report = up.upscale_volume(source, folder / "crop_x2.nii.gz", upscaler, progress=False)
    return source, folder / "crop_x2.nii.gz", report


# ------------------------------------------------------------------------------ grid


def test_upscaled_affine_by_hand():
    affine = np.array([[2.0, 0, 0, 10], [0, 3.0, 0, 20], [0, 0, 4.0, 30], [0, 0, 0, 1]])
    got = up.upscaled_affine(affine, (0, 1), 2)
    # new voxel (0, 0, k) sits a quarter of an old voxel before old voxel (0, 0, k)
    np.testing.assert_allclose(got[:3, 3], [10 - 0.5, 20 - 0.75, 30])
    np.testing.assert_allclose(np.diag(got)[:3], [1.0, 1.5, 4.0])
    # x4: new voxel 0 at old coordinate (0 + 0.5) / 4 - 0.5 = -0.375
    np.testing.assert_allclose(up.upscaled_affine(affine, (0,), 4)[0, 3], 10 - 0.375 * 2)


def test_output_voxel_centres_map_to_the_same_world_points_as_the_input(x2):
    source, output, _ = x2
    before, after = nib.load(str(source)), nib.load(str(output))
    rng = np.random.default_rng(0)
    old = np.column_stack([rng.integers(0, n, 20) for n in before.shape]).astype(float)
    # old voxel (i, j, k) is covered by new voxels 2i, 2i + 1 (same for j): its centre is
    # new coordinate 2i + 0.5, and the slice index is kept
    expected_new = old * [2, 2, 1] + [0.5, 0.5, 0]
    for form in ("qform", "sform"):
        a_old = getattr(before, f"get_{form}")()
        a_new = getattr(after, f"get_{form}")()
        world = nib.affines.apply_affine(a_old, old)
        new = nib.affines.apply_affine(np.linalg.inv(a_new), world)
        np.testing.assert_allclose(new, expected_new, atol=1e-4, err_msg=form)
    assert int(after.header["qform_code"]) == 2 and int(after.header["sform_code"]) == 1


def test_zooms_halve_in_plane_and_the_slices_are_kept(x2):
    source, output, report = x2
    before, after = nib.load(str(source)), nib.load(str(output))
    assert after.shape == (128, 96, 3) == report.shape_out
    np.testing.assert_allclose(
        after.header.get_zooms(), np.array(before.header.get_zooms()) / [2, 2, 1], rtol=1e-6
    )
    assert report.axis == 2 and report.slices == 3
    assert after.get_data_dtype() == np.float32
    assert after.header.get_slope_inter() in ((None, None), (1.0, 0.0))
    assert b"rrlsrn upscale x2 (rrlsrn)" in after.header["descrip"].tobytes()


def test_round_trip_the_output_degrades_back_to_the_input(x2):
    # Same anatomy at the same place: the operator applied to the SR volume gives the
    # input back far better than a one-voxel shift of the output would.
    source, output, _ = x2
    lr = nib.load(str(source)).get_fdata()
    sr = nib.load(str(output)).get_fdata()
    peak = np.percentile(lr[lr > 0], 99.5)
    degrade = make_degradation()
    to_lr = lambda v: degrade(torch.from_numpy(np.moveaxis(v / peak, 2, 0)), 2).numpy()  # noqa: E731
    target = np.moveaxis(lr / peak, 2, 0)
    aligned = psnr(to_lr(sr), target, shave=2).min().item()
    shifted = psnr(to_lr(np.roll(sr, 1, axis=0)), target, shave=2).max().item()
    assert aligned > 38 and aligned > shifted + 5


def test_sr_of_an_lr_made_by_the_operator_lands_on_the_hr_grid_and_beats_bicubic(
    tmp_path, upscaler
):
    hr_path = crop_of_the_fetal_sample(tmp_path / "hr.nii.gz")
    hr_img = nib.load(str(hr_path))
    hr = hr_img.get_fdata(dtype=np.float32)
    degrade = make_degradation()
    lr = np.moveaxis(degrade(torch.from_numpy(np.moveaxis(hr, 2, 0)), 2).numpy(), 0, 2)
    lr_img = nib.Nifti1Image(lr, downscaled_affine(hr_img.affine, (0, 1), 2))
    lr_img.set_qform(lr_img.affine, code=1)
    nib.save(lr_img, str(tmp_path / "lr.nii.gz"))
    up.upscale_volume(tmp_path / "lr.nii.gz", tmp_path / "sr.nii.gz", upscaler, progress=False)
    sr_img = nib.load(str(tmp_path / "sr.nii.gz"))
    np.testing.assert_allclose(sr_img.affine, hr_img.affine, atol=1e-5)
    peak = np.percentile(hr[hr > 0], 99.5)
    bicubic = np.moveaxis(
        torch.nn.functional.interpolate(
            torch.from_numpy(np.moveaxis(lr, 2, 0))[:, None], scale_factor=2, mode="bicubic"
        )[:, 0].numpy(),
        0,
        2,
    )

    def score(v):
        hr01 = np.clip(np.moveaxis(hr, 2, 0) / peak, 0, 1)
        return psnr(np.clip(np.moveaxis(v, 2, 0) / peak, 0, 1), hr01, 2).mean().item()

    assert score(sr_img.get_fdata()) > score(bicubic) + 1.0


def test_x4_cascade_shape_affine_and_equals_two_x2_passes(tmp_path, upscaler, x2):
    source, x2_path, _ = x2
    report = up.upscale_volume(source, tmp_path / "x4.nii.gz", upscaler, scale=4, progress=False)
    x4 = nib.load(str(tmp_path / "x4.nii.gz"))
    before = nib.load(str(source))
    assert x4.shape == (256, 192, 3) == report.shape_out
    np.testing.assert_allclose(
        x4.header.get_zooms(), np.array(before.header.get_zooms()) / [4, 4, 1], rtol=1e-6
    )
    world = nib.affines.apply_affine(before.affine, [[3, 5, 1]])
    new = nib.affines.apply_affine(np.linalg.inv(x4.affine), world)
    np.testing.assert_allclose(new, [[4 * 3 + 1.5, 4 * 5 + 1.5, 1]], atol=1e-4)
    twice = up.upscale_volume(
        x2_path, tmp_path / "x2x2.nii.gz", upscaler, progress=False
    )  # the x2 output run again: same grid, nearly the same values (normalisation differs)
    again = nib.load(str(twice.output))
    np.testing.assert_allclose(again.affine, x4.affine, atol=1e-5)
    a, b = x4.get_fdata(), again.get_fdata()
    assert np.abs(a - b).max() < 0.02 * a.max()


def test_any_trained_scale_works_and_other_scales_are_refused(tmp_path):
    model = build_model("fsrcnn", scale=3)
    save_checkpoint(
        {"model_name": "fsrcnn", "model_kwargs": {"scale": 3}, "model": model.state_dict()},
        tmp_path / "best.pt",
    )
    upscaler = up.load_upscaler(weights=tmp_path / "best.pt")
    assert upscaler.model_scale == 3
    source = crop_of_the_fetal_sample(tmp_path / "in.nii.gz")
    report = up.upscale_volume(source, tmp_path / "x3.nii.gz", upscaler, scale=3, progress=False)
    assert report.shape_out == (192, 144, 3)
    # FSRCNN's transposed conv makes its own scale only: no cascade, no other scale
    with pytest.raises(up.UpscaleError, match="FSRCNN .* x3 only, not x2; pass --scale 3"):
        up.upscale_volume(source, tmp_path / "x2.nii.gz", upscaler, scale=2, progress=False)
    with pytest.raises(up.UpscaleError, match="makes x3 only, not x9"):
        up.load_upscaler(weights=tmp_path / "best.pt", scale=9)
    assert not (tmp_path / "x2.nii.gz").exists()


def test_a_network_without_weights_at_the_scale_is_refused_before_any_work(tmp_path):
    with pytest.raises(up.UpscaleError, match="'fsrcnn' ships no x3 weights \\(shipped: x2, x4\\)"):
        up.load_upscaler("fsrcnn", scale=3)
    assert up.load_upscaler("fsrcnn", scale=4).model.scale == 4  # its own x4 weights
    with pytest.raises(up.UpscaleError, match="^rrlsrn reaches x2, x4, x8, .* not x3$"):
        up.load_upscaler("rrlsrn", scale=3)
    assert up.load_upscaler("rrlsrn", scale=4).model.scale == 4  # the x2 weights, cascaded
    assert up.load_upscaler("nmu", scale=3).model is None  # any scale


def test_a_classical_method_runs_on_the_volume_with_the_named_operator(tmp_path):
    """--method bicubic: each slice, divided by the p99.5 intensity, is MATLAB bicubic x2."""
    source = crop_of_the_fetal_sample(tmp_path / "in.nii.gz")
    args = ["upscale", str(source), str(tmp_path / "bicubic.nii.gz"), "--method", "bicubic"]
    assert main([*args, "--quiet"]) == 0
    data = nib.load(str(source)).get_fdata()
    high = float(np.percentile(data, 99.5))
    out = nib.load(str(tmp_path / "bicubic.nii.gz"))
    expected = np.stack([imresize(data[..., k] / high, 2.0) for k in range(3)], axis=-1)
    np.testing.assert_allclose(out.get_fdata(), np.maximum(expected, 0) * high, rtol=1e-4)
    assert b"bicubic, bicubic operator" in out.header["descrip"].tobytes()


@pytest.mark.parametrize("method", ["cubic_spline", "nmu", "fsrcnn", "rrlsrn_no_gdl"])
def test_every_kind_of_method_upscales_a_volume(tmp_path, method):
    source = crop_of_the_fetal_sample(tmp_path / "in.nii.gz")
    upscaler = up.load_upscaler(method, degradation="gaussian_block")
    if method == "nmu":  # a few iterations are enough here
        upscaler = dataclasses.replace(upscaler, params={**upscaler.params, "max_iterations": 2})
    report = up.upscale_volume(source, tmp_path / "out.nii.gz", upscaler, progress=False)
    assert report.shape_out == (128, 96, 3)
    assert np.isfinite(nib.load(str(report.output)).get_fdata()).all()


def test_mask_skips_empty_slices_and_zeroes_outside(tmp_path, upscaler):
    img = nib.load(str(FETAL)).slicer[120:168, 120:168, 4:8]  # slices 4, 5 lack brain
    nib.save(img, str(tmp_path / "in.nii.gz"))
    mask = nib.load(str(FETAL_MASK)).slicer[120:168, 120:168, 4:8]
    nib.save(mask, str(tmp_path / "mask.nii.gz"))
    report = up.upscale_volume(
        tmp_path / "in.nii.gz",
        tmp_path / "out.nii.gz",
        upscaler,
        mask=tmp_path / "mask.nii.gz",
        progress=False,
    )
    inside = np.asarray(mask.dataobj) > 0.5
    assert report.slices == int(inside.any(axis=(0, 1)).sum()) == 2
    out = nib.load(str(tmp_path / "out.nii.gz")).get_fdata()
    big_mask = inside.repeat(2, 0).repeat(2, 1)
    assert np.all(out[~big_mask] == 0) and out[big_mask].mean() > 0


def test_a_folder_of_volumes_goes_to_an_output_folder(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    for name in ("a.nii.gz", "b.nii"):
        crop_of_the_fetal_sample(tmp_path / "in" / name)
    (tmp_path / "in" / "notes.txt").write_text("not a volume")
    assert main(["upscale", str(tmp_path / "in"), str(tmp_path / "out"), "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.nii.gz", "b.nii"]
    assert nib.load(str(tmp_path / "out" / "b.nii")).shape == (128, 96, 3)
    assert capsys.readouterr().out.count("slices in") == 2


# ------------------------------------------------------------------------ bad input


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


# Refusals (same file, bad values, unreadable input, ...) are rows of tests/test_bad_input.py.


def test_overwrite_replaces_an_earlier_output(tmp_path):
    source = crop_of_the_fetal_sample(tmp_path / "in.nii.gz")
    out = tmp_path / "result.nii.gz"
    out.write_bytes(b"earlier result")
    assert main(["upscale", str(source), str(out), "--quiet", "--overwrite"]) == 0
    assert nib.load(str(out)).shape == (128, 96, 3)


def test_auto_axis_on_isotropic_voxels_slices_the_fewest_voxels_and_says_so(tmp_path, capsys):
    # 1 mm isotropic 40 x 40 x 6: the old rule sliced axis 0 (40 slices of 40 x 6)
    data = np.asarray(nib.load(str(FETAL)).dataobj)[120:160, 120:160, 8:14]
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "iso.nii.gz"))
    assert main(["upscale", str(tmp_path / "iso.nii.gz"), str(tmp_path / "x2.nii.gz")]) == 0
    assert nib.load(str(tmp_path / "x2.nii.gz")).shape == (80, 80, 6)
    assert "slicing along axis 2: 6 slices of 40×40; --axis to change" in capsys.readouterr().out
    # a single slice: its size-1 axis is the slice axis
    nib.save(nib.Nifti1Image(data[:, :, :1], np.eye(4)), str(tmp_path / "one.nii.gz"))
    assert main(["upscale", str(tmp_path / "one.nii.gz"), str(tmp_path / "one2.nii.gz")]) == 0
    assert nib.load(str(tmp_path / "one2.nii.gz")).shape == (80, 80, 1)


def test_a_failure_mid_volume_leaves_no_output(tmp_path, upscaler, monkeypatch):
    source = crop_of_the_fetal_sample(tmp_path / "in.nii.gz")

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(up, "super_resolve_stack", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        up.upscale_volume(source, tmp_path / "out.nii.gz", upscaler, progress=False)
    assert not (tmp_path / "out.nii.gz").exists() and not leftovers(tmp_path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_output_matches_cpu(tmp_path, upscaler, x2):
    source, cpu_path, _ = x2
    up.upscale_volume(source, tmp_path / "gpu.nii.gz", upscaler, device="cuda", progress=False)
    cpu = nib.load(str(cpu_path)).get_fdata()
    gpu = nib.load(str(tmp_path / "gpu.nii.gz")).get_fdata()
    peak = cpu.max()
    assert psnr(np.moveaxis(gpu / peak, 2, 0), np.moveaxis(cpu / peak, 2, 0)).min().item() > 40


@pytest.mark.parametrize(("dims", "calls"), [(2, [16, 4]), (3, [20])])
def test_a_volumetric_method_gets_the_whole_stack_in_one_call(dims, calls):
    # NMU in 3D needs the neighbouring slices: upscale must not cut the stack in batches
    seen = []

    def nearest(lr, scale, degradation, **params):
        seen.append(len(lr))
        return lr.repeat_interleave(scale, 1).repeat_interleave(scale, 2)

    upscaler = up.Upscaler("mine", None, method=nearest, params={"dims": dims})
    stack = np.random.default_rng(0).random((20, 4, 5)).astype(np.float32)
    out = up.super_resolve_stack(stack, upscaler, 2, torch.device("cpu"), progress=False)
    assert seen == calls
    np.testing.assert_array_equal(out[:, ::2, ::2], stack)
