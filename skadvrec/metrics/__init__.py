"""Ranking, fairness, attribute-leakage and robustness metrics, as functions and as scorers."""

from ._scorers import (AUCScorer, HitRateScorer, NDCGScorer, RankingScorer, RecallScorer,
                       get_scorer)
from .fairness import GroupMetricScorer, metric_by_group
from .feature_fairness import (FeatureGroupAUCScorer, RowAUCScorer, combination_variety,
                               feature_group_auc, sample_frequency, value_frequency)
from .leakage import LeakageScorer, attribute_leakage, default_attackers, resolve_attribute_types
from .robustness import TargetHitRatioScorer, target_hit_ratio
from .underserved import UnderservedUpliftScorer, underserved_uplift
from .ranking import (auc_score, batch_metrics, hit_rate_at_k, ndcg_at_k, parse_metric,
                      ranking_metrics, recall_at_k, topk_ranking)

__all__ = [
    "ndcg_at_k", "recall_at_k", "hit_rate_at_k", "auc_score", "ranking_metrics", "parse_metric",
    "topk_ranking", "RankingScorer", "NDCGScorer", "RecallScorer", "HitRateScorer", "AUCScorer",
    "get_scorer", "GroupMetricScorer", "metric_by_group", "UnderservedUpliftScorer",
    "underserved_uplift", "attribute_leakage", "LeakageScorer", "resolve_attribute_types",
    "default_attackers",
    "target_hit_ratio", "TargetHitRatioScorer", "batch_metrics", "FeatureGroupAUCScorer",
    "RowAUCScorer", "feature_group_auc", "value_frequency", "combination_variety",
    "sample_frequency",
]
