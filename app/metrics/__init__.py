"""Agreement metrics over rankings and labels: pure numpy, no imports from the rest of ``app``."""

from app.metrics.bootstrap import bootstrap_ci, bootstrap_ratio_ci
from app.metrics.intervals import MIN_UNITS, ratio_interval, ratio_interval_from_sums, t_quantile
from app.metrics.ranking import (
    PairCounts,
    PositionBias,
    buckets_to_ranks,
    kendall_tau_b,
    kendall_tau_b_batch,
    pair_counts_batch,
    pairwise_agreement,
    pairwise_agreement_batch,
    peer_agreement,
    peer_agreement_batch,
    position_bias,
)
from app.metrics.reliability import (
    cohen_kappa,
    krippendorff_alpha,
    krippendorff_alpha_ordinal,
    percent_agreement,
    ranking_alpha,
    ranking_alpha_grouped,
)

__all__ = [
    "MIN_UNITS",
    "PairCounts",
    "PositionBias",
    "bootstrap_ci",
    "bootstrap_ratio_ci",
    "buckets_to_ranks",
    "cohen_kappa",
    "kendall_tau_b",
    "kendall_tau_b_batch",
    "krippendorff_alpha",
    "krippendorff_alpha_ordinal",
    "pairwise_agreement",
    "pair_counts_batch",
    "pairwise_agreement_batch",
    "peer_agreement",
    "peer_agreement_batch",
    "percent_agreement",
    "position_bias",
    "ratio_interval",
    "ratio_interval_from_sums",
    "ranking_alpha",
    "ranking_alpha_grouped",
    "t_quantile",
]
