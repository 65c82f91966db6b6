"""Evaluation metrics of the study (THESIS section 5), batched over samples.

Relevance maps R are (N, H, W) arrays (H = 28, W = 28 * n_blocks); block masks are (N, n_blocks)
0/1 arrays. Degenerate maps follow one convention: a ratio whose denominator is 0 scores 0 (a zero
block-relevance vector has cosine 0, no positive relevance gives a share of 0, a map without mass
has entropy 0), so means over a test set never see NaN.
"""
from .blocks import block_relevance, cosine_similarity, relevance_in_mask
from .ground_truth import block_mask_to_pixels, relevance_mass_accuracy, relevance_rank_accuracy
from .perturbation import aopc, patch_order, pixel_flipping
from .spread import heatmap_entropy, relevance_per_step
from .stats import fold_mean_ci, mean_ci

__all__ = [
    "block_relevance", "cosine_similarity", "relevance_in_mask",
    "block_mask_to_pixels", "relevance_mass_accuracy", "relevance_rank_accuracy",
    "patch_order", "pixel_flipping", "aopc",
    "heatmap_entropy", "relevance_per_step",
    "mean_ci", "fold_mean_ci",
]
