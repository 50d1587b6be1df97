"""Linear item-item recommenders: EASE, EASE-IPW and the adversarially reweighted ARM / R-LARM."""

from .ease import EASE, EASEIPW
from .rlarm import ARM, RLARM

__all__ = ["EASE", "EASEIPW", "ARM", "RLARM"]
