"""skadvrec: scikit-learn-compatible adversarially trained recommenders.

Fit / predict / score estimators with torch internals (GPU when there is one), and fairness and
robustness measures as scorers that work in GridSearchCV and Pipeline.
"""

from .attacks import BandwagonAttack, PopularAttack, RandomAttack, select_target_items
from .cf import APR, BPRMF, LightGCN, PamaCF
from .erasure import LinearErasure
from .fm import AAFM, FM, AdvFM
from .linear import ARM, EASE, EASEIPW, RLARM
from .metrics import (AUCScorer, FeatureGroupAUCScorer, GroupMetricScorer, HitRateScorer,
                      LeakageScorer, NDCGScorer, RankingScorer, RecallScorer, RowAUCScorer,
                      TargetHitRatioScorer, UnderservedUpliftScorer)
from .vae import AdvXMultVAE, MultVAE

__version__ = "0.1.0.dev0"

__all__ = ["EASE", "EASEIPW", "ARM", "RLARM", "MultVAE", "AdvXMultVAE", "BPRMF", "LightGCN",
           "APR", "PamaCF", "RandomAttack", "BandwagonAttack", "PopularAttack",
           "select_target_items", "RankingScorer", "NDCGScorer", "RecallScorer", "HitRateScorer",
           "AUCScorer", "GroupMetricScorer", "UnderservedUpliftScorer", "LeakageScorer",
           "TargetHitRatioScorer", "FM", "AdvFM", "AAFM", "FeatureGroupAUCScorer",
           "RowAUCScorer", "LinearErasure", "__version__"]
