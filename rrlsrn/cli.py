"""The ``rrlsrn`` command: upscale your own stacks, evaluate them, prepare data, train."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml


def _parse_assignments(items: Sequence[str], what: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` with YAML typing of values."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"rrlsrn: {what} must look like KEY=VALUE, got {item!r}")
        out[key] = yaml.safe_load(value)
    return out


def cmd_params(args: argparse.Namespace) -> int:
    from rrlsrn.models import build_model, count_parameters

    kwargs = _parse_assignments(args.model_arg, "--model-arg")
    model = build_model(args.model, **kwargs)
    convs = sum(type(m).__name__ == "Conv2d" for m in model.modules())
    tconvs = sum(type(m).__name__ == "ConvTranspose2d" for m in model.modules())
    print(
        f"{args.model} {kwargs or ''}: {count_parameters(model):,} trainable parameters "
        f"({convs} conv layers, {tconvs} transposed convs)"
    )
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from rrlsrn.data.prepare import SliceOptions, prepare_volume
    from rrlsrn.io import save_npz_atomic

    options = SliceOptions(
        axis=args.axis if args.axis == "auto" else int(args.axis), scale=args.scale
    )
    data = prepare_volume(args.volume, options, mask_path=args.mask)
    save_npz_atomic(args.out, **data)
    print(
        f"{args.out}: {data['hr'].shape[0]} slices of {data['hr'].shape[1:]} "
        f"(axis {int(data['axis'])})"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from rrlsrn.io import load_slices
    from rrlsrn.settings import make_settings
    from rrlsrn.train import train

    overrides = _parse_assignments(args.set, "--set")
    settings = make_settings(args.preset, overrides)
    summary = train(
        args.model,
        load_slices(args.train),
        load_slices(args.val),
        args.out,
        settings,
        model_kwargs=_parse_assignments(args.model_arg, "--model-arg"),
        device=args.device,
        weights_name=args.weights_name,
        threads=args.threads,
    )
    print(json.dumps(summary, indent=2))
    return 0


def cmd_ship_weights(args: argparse.Namespace) -> int:
    from rrlsrn.modelcard import ship_weights
    from rrlsrn.weights import WEIGHTS_DIR

    command = "rrlsrn " + " ".join(sys.argv[1:]) if args.command_line is None else args.command_line
    pt, md = ship_weights(
        args.checkpoint,
        args.name,
        args.dest or WEIGHTS_DIR,
        args.train,
        args.val,
        command,
        args.device,
    )
    print(f"wrote {pt} and {md}")
    return 0


def cmd_measure_weights(args: argparse.Namespace) -> int:
    from rrlsrn.modelcard import measure_on_test_sets, measured_section, write_test_set_section
    from rrlsrn.weights import WEIGHTS_DIR, shipped_weights

    for name in args.name or shipped_weights():
        metrics = measure_on_test_sets(name, args.results, device=args.device)
        section = measured_section(metrics, args.results)
        write_test_set_section(WEIGHTS_DIR / f"{name}.md", section)
        print(f"{name}:\n{section}")
    return 0


def cmd_data_summary(args: argparse.Namespace) -> int:
    from rrlsrn.data.summary import read_manifest, summary

    files = sorted((args.results / "manifests").glob("*.tsv"))
    if not files:
        raise SystemExit(
            f"rrlsrn: no manifests in {args.results / 'manifests'}; make them with "
            f"`snakemake --cores 2 {args.results}/tables/data_summary.md`"
        )
    print(summary([read_manifest(f) for f in files]).to_markdown(index=False, floatfmt=".3f"))
    return 0


def cmd_upscale(args: argparse.Namespace) -> int:
    from rrlsrn.checkpoint import CheckpointError
    from rrlsrn.upscale import load_upscaler, upscale_paths

    try:
        upscaler = load_upscaler(args.model, args.weights)
        reports = upscale_paths(
            args.input,
            args.output,
            upscaler,
            mask=args.mask,
            overwrite=args.overwrite,
            scale=args.scale,
            axis=args.axis,
            device=args.device,
            batch_size=args.batch,
            progress=not args.quiet,
        )
    except (ValueError, CheckpointError, FileNotFoundError, RuntimeError) as error:
        # ValueError covers UpscaleError and VolumeError (bad input, named in the message)
        raise SystemExit(f"rrlsrn upscale: {error}") from error
    for r in reports:
        zooms = " x ".join(f"{z:.3g}" for z in r.zooms_out)
        print(
            f"{r.input} -> {r.output}: {r.shape_in} -> {r.shape_out} ({zooms} mm), "
            f"slices across axis {r.axis}, {r.slices} slices in {r.seconds:.1f} s on {r.device}"
        )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from rrlsrn.io import VolumeError, write_text_atomic
    from rrlsrn.volume_metrics import compare_volumes

    try:
        result = compare_volumes(
            args.hr,
            args.sr,
            args.mask,
            axis=args.axis,
            shave=args.shave,
            min_mask_fraction=args.min_mask_fraction,
        )
    except (VolumeError, ValueError) as error:
        raise SystemExit(f"rrlsrn evaluate: {error}") from error
    if result.affine_differs:
        print(f"warning: {args.sr} and {args.hr} have different affines", file=sys.stderr)
    summary = result.summary()
    print(
        f"{args.sr} vs {args.hr}: {len(result.per_slice)} slices across axis {result.axis}, "
        f"mask: {result.mask_source}, border {args.shave} px left out"
    )
    labels = {
        "psnr": "PSNR (dB)",
        "ssim": "SSIM",
        "psnr_mask": "PSNR in mask (dB)",
        "ssim_mask": "SSIM in mask",
    }
    for row in summary.itertuples():
        digits = 2 if row.metric.startswith("psnr") else 4
        print(
            f"  {labels[row.metric]:<18} {row.mean:.{digits}f} (SD {row.sd:.{digits}f}, n {row.n})"
        )
    if args.per_slice:
        write_text_atomic(args.per_slice, result.per_slice.to_csv(index=False))
        print(f"per-slice values: {args.per_slice}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rrlsrn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("params", help="print a model's parameter and layer counts")
    p.add_argument("--model", default="rrlsrn")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_params)

    p = sub.add_parser(
        "upscale",
        help="super-resolve your own NIfTI stack (or a folder of them) in-plane",
        description="Super-resolve every 2D slice of a NIfTI volume in-plane; the output's "
        "affine and header describe the finer grid, so it overlays the input.",
    )
    p.add_argument("input", type=Path, help="a .nii / .nii.gz volume, or a folder of them")
    p.add_argument("output", type=Path, help="output .nii(.gz), or a folder for a folder")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model", help="shipped weights by name (default: rrlsrn)")
    which.add_argument("--weights", type=Path, help="a checkpoint the trainer wrote (best.pt)")
    p.add_argument("--scale", type=int, default=2, help="2, or 4 by cascading the x2 model")
    p.add_argument(
        "--axis",
        default="auto",
        choices=["auto", "0", "1", "2"],
        help="slice axis (auto: across the finest, most isotropic plane)",
    )
    p.add_argument("--mask", type=Path, help="brain mask on the input grid: zero outside")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--batch", type=int, help="slices per batch (default: 1 on CPU, 32 on CUDA)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_upscale)

    p = sub.add_parser(
        "evaluate",
        help="PSNR / SSIM of an SR volume against HR, with the benchmark's conventions",
    )
    p.add_argument("hr", type=Path, help="reference HR .nii(.gz)")
    p.add_argument("sr", type=Path, help="super-resolved .nii(.gz) on the same grid")
    p.add_argument("--mask", type=Path, help="mask on the HR grid (default: computed head mask)")
    p.add_argument("--axis", default="auto", choices=["auto", "0", "1", "2"])
    p.add_argument("--shave", type=int, default=2, help="border left out (default 2, the scale)")
    p.add_argument(
        "--min-mask-fraction",
        type=float,
        default=0.02,
        help="slices with less of the mask are left out (default 0.02)",
    )
    p.add_argument("--per-slice", type=Path, help="write per-slice values to this CSV")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("prepare", help="slice and normalise one 3D volume into an .npz")
    p.add_argument("volume", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--mask", type=Path)
    p.add_argument("--axis", default="auto", choices=["auto", "0", "1", "2"])
    p.add_argument("--scale", type=int, default=2)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train a learned model with a preset (resumable)")
    p.add_argument("--model", default="rrlsrn")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--preset", default="demo")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a preset field, e.g. --set max_steps=500",
    )
    p.add_argument("--train", nargs="+", required=True, type=Path, help="training .npz files")
    p.add_argument("--val", nargs="+", required=True, type=Path, help="validation .npz files")
    p.add_argument("--out", required=True, type=Path, help="checkpoint folder")
    p.add_argument("--weights-name", help="shipped weights to start from (init: shipped)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int)
    p.set_defaults(func=cmd_train)

    data = sub.add_parser("data", help="dataset information").add_subparsers(
        dest="data_command", required=True
    )
    p = data.add_parser("summary", help="units, slices per split, voxel sizes, intensities")
    p.add_argument("--results", type=Path, default=Path("results"))
    p.set_defaults(func=cmd_data_summary)

    p = sub.add_parser(
        "measure-weights",
        help="PSNR / SSIM of the shipped weights on a run's test sets, into their model cards",
    )
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--name", action="append", help="shipped weights (default: all)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_measure_weights)

    p = sub.add_parser("ship-weights", help="copy a best checkpoint into the package + card")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--name", required=True, help="shipped name, e.g. rrlsrn")
    p.add_argument("--train", nargs="+", required=True, type=Path, help="training .npz files")
    p.add_argument("--val", nargs="+", required=True, type=Path, help="validation .npz files")
    p.add_argument("--dest", type=Path, help="default: the package's weights folder")
    p.add_argument("--command-line", help="how the checkpoint was made (for the card)")
    p.add_argument("--device", default="2 CPU cores", help="where it was trained (for the card)")
    p.set_defaults(func=cmd_ship_weights)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
