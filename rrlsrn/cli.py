"""The ``rrlsrn`` command: upscale your own stacks, evaluate them, prepare data, train.

A user error (bad file, bad value, unusable device) ends with one line naming the file
or argument and exit status 1 (2 for a bad command line); ``--debug`` shows the
traceback instead.  Ctrl-C ends with one line and status 130; outputs are written to a
temporary file and renamed, so an interrupted command leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

INTERRUPTED = 130  # the shell's status for a command ended by SIGINT (128 + 2)
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


class CommandError(ValueError):
    """A user error found by a command itself (the message names the file or option)."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``rrlsrn upscale: argument --batch: ...``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def integer_at_least(minimum: int, wording: str) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``minimum``, else "must be <wording>"."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {wording}, got {text}")
        return value

    return parse


positive_int = integer_at_least(1, "a positive integer")  # --batch, --threads
nonnegative_int = integer_at_least(0, "a non-negative integer")  # --seed
non_negative_int = integer_at_least(0, "0 or a positive integer")  # --shave
scale_factor = integer_at_least(2, "an integer of at least 2")  # --scale


def fraction(text: str) -> float:
    """A number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text}")
    return value


def device_choice(text: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (whether it exists is checked when used)."""
    if not DEVICE_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda or cuda:N, got {text!r}")
    return text


def check_device(device: str) -> None:
    """Refuse a device this machine does not have (:func:`rrlsrn.train.pick_device`'s
    rule), before any work."""
    from rrlsrn.train import pick_device

    try:
        pick_device(device)
    except RuntimeError as error:
        raise CommandError(f"--{error}") from None


def version_text() -> str:
    """Package version, torch version and the devices torch sees (``rrlsrn --version``)."""
    from importlib.metadata import version

    import torch

    devices = [f"cpu ({torch.get_num_threads()} threads)"]
    if torch.cuda.is_available():
        devices += [
            f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())
        ]
    else:
        devices.append("no CUDA device")
    return (
        f"rrlsrn {version('rrlsrn-bench')}, torch {torch.__version__}, "
        f"devices: {', '.join(devices)}"
    )


class VersionAction(argparse.Action):
    """Print :func:`version_text` and exit (torch is imported only when asked)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(version_text())
        parser.exit()


def _parse_assignments(items: Sequence[str], what: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` with YAML typing of values."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"{what} must look like KEY=VALUE, got {item!r}")
        out[key] = yaml.safe_load(value)
    return out


def cmd_params(args: argparse.Namespace) -> int:
    from rrlsrn.models import build_model, count_parameters

    kwargs = _parse_assignments(args.model_arg, "--model-arg")
    model = build_model(args.model, args.scale, **kwargs)
    convs = sum(type(m).__name__ == "Conv2d" for m in model.modules())
    tconvs = sum(type(m).__name__ == "ConvTranspose2d" for m in model.modules())
    print(
        f"{args.model} x{args.scale} {kwargs or ''}: {count_parameters(model):,} trainable "
        f"parameters ({convs} conv layers, {tconvs} transposed convs)"
    )
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from rrlsrn.data.prepare import SliceOptions, prepare_volume
    from rrlsrn.io import same_file, save_npz_atomic

    if any(same_file(args.out, p) for p in (args.volume, args.mask) if p is not None):
        raise CommandError(f"{args.out}: the output is an input; choose another path")
    options = SliceOptions(
        axis=args.axis if args.axis == "auto" else int(args.axis), scale=args.scale
    )
    data = prepare_volume(args.volume, options, mask_path=args.mask)
    save_npz_atomic(args.out, **data)
    chosen = "; --axis to change" if args.axis == "auto" else ""
    print(
        f"{args.out}: {data['hr'].shape[0]} slices of {data['hr'].shape[1:]} "
        f"(axis {int(data['axis'])}{chosen})"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from rrlsrn.io import load_slices
    from rrlsrn.settings import make_settings
    from rrlsrn.train import train

    check_device(args.device)
    overrides = _parse_assignments(args.set, "--set")
    settings = make_settings(args.preset, overrides)
    summary = train(
        args.model,
        load_slices(args.train),
        load_slices(args.val),
        args.out,
        settings,
        model_kwargs=_parse_assignments(args.model_arg, "--model-arg"),
        scale=args.scale,
        device=args.device,
        weights_name=args.weights_name,
        threads=args.threads,
    )
    print(json.dumps(summary, indent=2))
    return 0


def cmd_augmentation_figure(args: argparse.Namespace) -> int:
    from rrlsrn.augment import augmentation_enabled
    from rrlsrn.figures import augmentation_figure, save_figure
    from rrlsrn.io import load_slices
    from rrlsrn.settings import make_settings

    settings = make_settings(args.preset, _parse_assignments(args.set, "--set"))
    if not augmentation_enabled(settings):
        raise CommandError(
            f"preset {args.preset!r} switches every intensity augmentation off: turn some on, "
            "e.g. --set augment_gamma=0.3 --set augment_bias=0.2"
        )
    slices = load_slices([args.data])
    if not slices:
        raise CommandError(f"{args.data}: holds no slices")
    number = len(slices) // 2 if args.slice is None else args.slice
    if not 0 <= number < len(slices):
        raise CommandError(f"--slice {number}: {args.data} has slices 0 to {len(slices) - 1}")
    paths = save_figure(augmentation_figure(slices[number], settings, args.seed), args.out)
    print(" ".join(str(p) for p in paths))
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
    from rrlsrn.modelcard import (
        gains_section,
        is_checkpoint_path,
        measure_weights,
        measured_section,
        metrics_of,
        test_set_metrics,
        write_test_set_section,
    )
    from rrlsrn.weights import WEIGHTS_DIR, shipped_weights

    check_device(args.device)
    names = args.name or shipped_weights()
    measured = measure_weights(names, args.results, args.contrasts, device=args.device)
    for name in names:
        metrics = metrics_of(measured, name)
        section = measured_section(test_set_metrics(metrics, name), args.results)
        section += "\n" + gains_section(metrics, name)
        if not is_checkpoint_path(name):
            write_test_set_section(WEIGHTS_DIR / f"{name}.md", section)
        print(f"{name}:\n{section}")
    return 0


def cmd_data_summary(args: argparse.Namespace) -> int:
    from rrlsrn.data.summary import read_manifest, summary

    files = sorted((args.results / "manifests").glob("*.tsv"))
    if not files:
        raise CommandError(
            f"no manifests in {args.results / 'manifests'}; make them with "
            f"`snakemake --cores 2 {args.results}/tables/data_summary.md`"
        )
    print(summary([read_manifest(f) for f in files]).to_markdown(index=False, floatfmt=".3f"))
    return 0


def cmd_data_sheet(args: argparse.Namespace) -> int:
    from rrlsrn.data.sheets import draft_sheet
    from rrlsrn.io import write_text_atomic

    folder = args.folder
    if not folder.is_dir():
        raise CommandError(f"{folder}: no such folder of volumes")
    where = args.output.parent if args.output else None
    text = draft_sheet(
        folder,
        seed=args.seed,
        val_fraction=args.val,
        test_fraction=args.test,
        mask_suffix=args.mask_suffix,
        relative_to=where,
    )
    if args.output:
        write_text_atomic(args.output, text)
        print(f"wrote {args.output} ({text.count(chr(10)) - 1} units)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_data_fetch_ixi(args: argparse.Namespace) -> int:
    from rrlsrn.data import ixi

    index = ixi.fetch_archive(args.path, args.contrast, base_url=args.base_url)
    xls = ixi.fetch_demographics(args.path, base_url=args.base_url)
    count = len(ixi.read_index(args.path, args.contrast))
    print(f"IXI {args.contrast}: {count} subjects indexed in {index}; demographics {xls}")
    print(f"IXI is {ixi.LICENCE}; attribute it as: {ixi.ATTRIBUTION}")
    return 0


def cmd_upscale(args: argparse.Namespace) -> int:
    from rrlsrn.upscale import load_upscaler, plan_upscale, upscale_paths

    check_device(args.device)
    plan = plan_upscale(args.input, args.output, args.mask, args.overwrite, args.skip_existing)
    upscaler = load_upscaler(args.method, args.weights, args.model, args.degradation, args.scale)
    reports, failures = upscale_paths(
        plan,
        upscaler,
        mask=args.mask,
        overwrite=args.overwrite,
        scale=args.scale,
        axis=args.axis,
        device=args.device,
        batch_size=args.batch,
        progress=not args.quiet,
    )
    for path in plan.skipped:
        print(f"{path} exists: kept (--skip-existing)")
    for r in reports:
        zooms = " x ".join(f"{z:.3g}" for z in r.zooms_out)
        print(
            f"{r.input} -> {r.output}: {r.shape_in} -> {r.shape_out} ({zooms} mm), "
            f"slices across axis {r.axis}, {r.slices} slices in {r.seconds:.1f} s on {r.device}"
        )
    for failure in failures:
        print(f"rrlsrn upscale: failed: {failure.reason}", file=sys.stderr)
    if failures:
        total = len(reports) + len(failures)
        print(
            f"rrlsrn upscale: {len(failures)} of {total} volumes failed (listed above); "
            f"the other {len(reports)} were written",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from rrlsrn.registry import methods_table

    print(methods_table())
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from rrlsrn.io import same_file, write_text_atomic
    from rrlsrn.volume_metrics import compare_volumes

    inputs = [p for p in (args.hr, args.sr, args.mask) if p is not None]
    if args.per_slice is not None and any(same_file(args.per_slice, p) for p in inputs):
        raise CommandError(f"{args.per_slice}: --per-slice would overwrite an input")
    result = compare_volumes(
        args.hr,
        args.sr,
        args.mask,
        axis=args.axis,
        shave=args.shave,
        min_mask_fraction=args.min_mask_fraction,
    )
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
    parser = Parser(prog="rrlsrn", description=__doc__)
    parser.add_argument(
        "--version", action=VersionAction, help="package and torch versions, devices seen"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("params", help="print a model's parameter and layer counts")
    p.add_argument("--model", default="rrlsrn")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--scale", type=scale_factor, default=2, help="the network's scale")
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
    which.add_argument(
        "--method", help="a method of `rrlsrn methods` (default: rrlsrn, its shipped weights)"
    )
    which.add_argument("--model", help="shipped weights by name (e.g. rrlsrn_no_gdl)")
    which.add_argument("--weights", type=Path, help="a checkpoint the trainer wrote (best.pt)")
    p.add_argument(
        "--degradation",
        default="bicubic",
        help="the LR operator a classical method assumes: bicubic, kspace, gaussian_block or "
        "gaussian_spline",
    )
    p.add_argument(
        "--scale",
        type=scale_factor,
        default=2,
        help="the in-plane factor (default 2); RRLSRN and LapSRN make x4, x8 by cascading "
        "their x2 network, other networks need weights of that scale, classical methods "
        "make any",
    )
    p.add_argument(
        "--axis",
        default="auto",
        choices=["auto", "0", "1", "2"],
        help="slice axis (auto: a size-1 axis, else the thickest spacing; ties: fewest voxels)",
    )
    p.add_argument("--mask", type=Path, help="brain mask on the input grid: zero outside")
    p.add_argument("--device", default="auto", type=device_choice, help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--batch", type=positive_int, help="slices per batch (default: 1 on CPU, 32 on CUDA)"
    )
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    existing.add_argument(
        "--skip-existing",
        action="store_true",
        help="keep existing outputs and do the rest (resume a folder)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_upscale)

    p = sub.add_parser("methods", help="list the methods: kind, label, reference, weights")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser(
        "evaluate",
        help="PSNR / SSIM of an SR volume against HR, with the benchmark's conventions",
    )
    p.add_argument("hr", type=Path, help="reference HR .nii(.gz)")
    p.add_argument("sr", type=Path, help="super-resolved .nii(.gz) on the same grid")
    p.add_argument("--mask", type=Path, help="mask on the HR grid (default: computed head mask)")
    p.add_argument("--axis", default="auto", choices=["auto", "0", "1", "2"])
    p.add_argument(
        "--shave", type=non_negative_int, default=2, help="border left out (default 2, the scale)"
    )
    p.add_argument(
        "--min-mask-fraction",
        type=fraction,
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
    p.add_argument("--scale", type=scale_factor, default=2)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train a learned model with a preset (resumable)")
    p.add_argument("--model", default="rrlsrn")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--scale", type=scale_factor, default=2, help="the scale to train at")
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
    p.add_argument("--device", default="auto", type=device_choice)
    p.add_argument("--threads", type=positive_int)
    p.set_defaults(func=cmd_train)

    data = sub.add_parser("data", help="dataset information").add_subparsers(
        dest="data_command", required=True
    )
    p = data.add_parser("summary", help="units, slices per split, voxel sizes, intensities")
    p.add_argument("--results", type=Path, default=Path("results"))
    p.set_defaults(func=cmd_data_summary)
    p = data.add_parser(
        "sheet",
        help="draft a sample sheet (units.tsv) from a folder (BIDS or flat), with a seeded "
        "subject-disjoint split",
    )
    p.add_argument("folder", type=Path, help="a BIDS tree or a folder of NIfTI volumes")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the split (0)")
    p.add_argument("--val", type=fraction, default=0.1, help="share of persons in val (0.1)")
    p.add_argument("--test", type=fraction, default=0.2, help="share of persons in test (0.2)")
    p.add_argument("--mask-suffix", default="_mask", help="flat folder: <volume><suffix> masks")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="write here instead of stdout (paths relative to it; absolute for an absolute FOLDER)",
    )
    p.set_defaults(func=cmd_data_sheet)
    p = data.add_parser(
        "fetch-ixi",
        help="download one IXI archive (resumable) and IXI.xls, and index the archive",
    )
    p.add_argument("path", type=Path, help="the ixi dataset's path (e.g. data/ixi)")
    p.add_argument("--contrast", choices=["T1", "T2", "PD"], default="T1")
    p.add_argument("--base-url", help="a mirror's folder holding IXI-<contrast>.tar")
    p.set_defaults(func=cmd_data_fetch_ixi)

    p = sub.add_parser(
        "measure-weights",
        help="PSNR / SSIM of the shipped weights on a run's test sets and on validation "
        "volumes of other contrasts, with the gains over bicubic and LapSRN x2, into their "
        "model cards",
    )
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument(
        "--name",
        action="append",
        help="shipped weights (default: all), or a checkpoint file: measured and printed only",
    )
    p.add_argument(
        "--contrasts",
        type=Path,
        help="a folder of validation volumes of other contrasts (one NIfTI per sub-folder)",
    )
    p.add_argument("--device", default="auto", type=device_choice)
    p.set_defaults(func=cmd_measure_weights)

    p = sub.add_parser(
        "augmentation-figure",
        help="one prepared slice under each intensity augmentation of a preset (PNG + PDF)",
    )
    p.add_argument("data", type=Path, help="a prepared .npz (rrlsrn prepare, results/data)")
    p.add_argument("out", type=Path, help="output stem: writes OUT.png and OUT.pdf")
    p.add_argument("--preset", default="pretrain")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a preset field, e.g. --set augment_gamma=0.3",
    )
    p.add_argument("--slice", type=non_negative_int, help="slice number (default: the middle)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.set_defaults(func=cmd_augmentation_figure)

    p = sub.add_parser("ship-weights", help="copy a best checkpoint into the package + card")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--name", required=True, help="shipped name, e.g. rrlsrn")
    p.add_argument("--train", nargs="+", required=True, type=Path, help="training .npz files")
    p.add_argument("--val", nargs="+", required=True, type=Path, help="validation .npz files")
    p.add_argument("--dest", type=Path, help="default: the package's weights folder")
    p.add_argument("--command-line", help="how the checkpoint was made (for the card)")
    p.add_argument("--device", default="2 CPU cores", help="where it was trained (for the card)")
    p.set_defaults(func=cmd_ship_weights)
    for command in [*sub.choices.values(), *data.choices.values()]:
        if command is not sub.choices["data"]:  # --debug after the command, too
            command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; errors end as one line on stderr and a status (see the module doc)."""
    args = build_parser().parse_args(argv)
    prog = " ".join(["rrlsrn", args.command, getattr(args, "data_command", "")]).strip()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"{prog}: interrupted; nothing half-written was left", file=sys.stderr)
        return INTERRUPTED
    except Exception as error:  # noqa: BLE001 - every error ends as one line unless --debug
        if args.debug:
            raise
        print(f"{prog}: {error_line(error)}", file=sys.stderr)
        return 1


def error_line(error: Exception) -> str:
    """One line for an error: the message of a user error; type and a hint otherwise."""
    from rrlsrn.checkpoint import CheckpointError
    from rrlsrn.data.download import DownloadError

    message = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, ValueError | OSError | CheckpointError | KeyError | DownloadError):
        return message
    return f"{type(error).__name__}: {message} (rerun with --debug for the traceback)"


if __name__ == "__main__":
    sys.exit(main())
