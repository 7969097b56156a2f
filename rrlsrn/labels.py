"""Display names of methods and metrics, shared by the tables and the figures."""

from __future__ import annotations

METHOD_LABELS = {
    "bicubic": "Bicubic",
    "cubic_spline": "Cubic spline",
    "nmu": "NMU",
    "lrtv": "LRTV",
    "srcnn": "SRCNN",
    "fsrcnn": "FSRCNN",
    "lapsrn_x2": "LapSRN x2 (natural images)",
    "rrlsrn": "RRLSRN",
    "rrlsrn_no_gdl": "RRLSRN without GDL",
    "rrlsrn_bicubic_bottom": "RRLSRN, bicubic bottom",
}

METRIC_LABELS = {
    "psnr": "PSNR",
    "ssim": "SSIM",
    "psnr_mask": "PSNR (mask)",
    "ssim_mask": "SSIM (mask)",
}


def method_label(method: str) -> str:
    """The name a reader sees for ``method`` (the config key when it has none)."""
    return METHOD_LABELS.get(method, method)


def metric_label(metric: str) -> str:
    """The name a reader sees for a metric column."""
    return METRIC_LABELS.get(metric, metric)
