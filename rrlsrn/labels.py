"""Display names of methods (from :mod:`rrlsrn.registry`) and metrics, for tables and figures."""

from __future__ import annotations

from rrlsrn import registry

METRIC_LABELS = {
    "psnr": "PSNR",
    "ssim": "SSIM",
    "psnr_mask": "PSNR (mask)",
    "ssim_mask": "SSIM (mask)",
}


def method_label(method: str) -> str:
    """The name a reader sees for ``method``: its registry label (else the config key)."""
    return registry.label(method)


def metric_label(metric: str) -> str:
    """The name a reader sees for a metric column."""
    return METRIC_LABELS.get(metric, metric)
