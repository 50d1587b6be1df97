"""Linear item-item recommenders: EASE and its user-reweighted variants."""

from .ease import EASE, EASEIPW

__all__ = ["EASE", "EASEIPW"]
