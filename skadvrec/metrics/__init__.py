"""Ranking, fairness, attribute-leakage and robustness metrics, as functions and as scorers."""

from ._scorers import (AUCScorer, HitRateScorer, NDCGScorer, RankingScorer, RecallScorer,
                       get_scorer)
from .fairness import GroupMetricScorer, metric_by_group
from .leakage import LeakageScorer, attribute_leakage, resolve_attribute_types
from .robustness import TargetHitRatioScorer, target_hit_ratio
from .underserved import UnderservedUpliftScorer, underserved_uplift
from .ranking import (auc_score, hit_rate_at_k, ndcg_at_k, parse_metric, ranking_metrics,
                      recall_at_k, topk_ranking)

__all__ = [
    "ndcg_at_k", "recall_at_k", "hit_rate_at_k", "auc_score", "ranking_metrics", "parse_metric",
    "topk_ranking", "RankingScorer", "NDCGScorer", "RecallScorer", "HitRateScorer", "AUCScorer",
    "get_scorer", "GroupMetricScorer", "metric_by_group", "UnderservedUpliftScorer",
    "underserved_uplift", "attribute_leakage", "LeakageScorer", "resolve_attribute_types",
    "target_hit_ratio", "TargetHitRatioScorer",
]
