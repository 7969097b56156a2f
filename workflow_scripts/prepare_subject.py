"""Snakemake adapter: one HR volume -> per-subject slice file (rrlsrn.data.prepare)."""

from rrlsrn.pipeline import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    from rrlsrn.data.prepare import SliceOptions, prepare_volume
    from rrlsrn.io import save_npz_atomic

    sm = snakemake  # noqa: F821
    options = SliceOptions(scale=sm.params.scale, **sm.params.slicing)
    data = prepare_volume(sm.input.volume, options, mask_path=sm.input.get("mask"))
    save_npz_atomic(sm.output[0], **data)
    print(
        f"{sm.input.volume} -> {sm.output[0]}: {data['hr'].shape[0]} slices "
        f"{data['hr'].shape[1:]} along axis {int(data['axis'])}"
    )
