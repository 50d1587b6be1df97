"""Factorization machines on categorical side features, and adversarial training for feature
fairness: :class:`FM`, :class:`AdvFM`, :class:`AAFM` (``decay=True``: D-AAFM).

Hu, Cao, He, Tan, Kan, "Automatic Feature Fairness in Recommendation via Adversaries",
SIGIR-AP 2023 (arXiv 2309.15418).
"""

from .fm import AAFM, FM, AdvFM

__all__ = ["FM", "AdvFM", "AAFM"]
