"""The methods RRLSRN is compared with; importing the package registers them by name.

Classical methods go into :data:`rrlsrn.infer.CLASSICAL`, CNNs into
:data:`rrlsrn.models.MODELS` (so the one trainer trains them).
"""

from baselines import interpolation, lrtv, nmu, srcnn  # noqa: F401  (srcnn registers CNNs)
from rrlsrn.infer import register_classical

register_classical("bicubic", interpolation.bicubic)
register_classical("cubic_spline", interpolation.cubic_spline)
register_classical("nmu", nmu.nmu)
register_classical("lrtv", lrtv.lrtv)
