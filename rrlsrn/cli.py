"""The ``rrlsrn`` command: parameter counts, data preparation and training."""

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
    from rrlsrn.train import make_settings, train

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rrlsrn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("params", help="print a model's parameter and layer counts")
    p.add_argument("--model", default="rrlsrn")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_params)

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
