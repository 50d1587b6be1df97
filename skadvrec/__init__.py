"""skadvrec: scikit-learn-compatible adversarially trained recommenders.

Fit / predict / score estimators with torch internals (GPU when there is one), and fairness and
robustness measures as scorers that work in GridSearchCV and Pipeline.
"""

from .linear import ARM, EASE, EASEIPW, RLARM
from .metrics import (AUCScorer, GroupMetricScorer, HitRateScorer, LeakageScorer, NDCGScorer,
                      RankingScorer, RecallScorer, UnderservedUpliftScorer)
from .vae import AdvXMultVAE, MultVAE

__version__ = "0.1.0.dev0"

__all__ = ["EASE", "EASEIPW", "ARM", "RLARM", "MultVAE", "AdvXMultVAE", "RankingScorer",
           "NDCGScorer", "RecallScorer", "HitRateScorer", "AUCScorer", "GroupMetricScorer",
           "UnderservedUpliftScorer", "LeakageScorer", "__version__"]
