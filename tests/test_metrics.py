"""lrpnet.metrics against hand-computed values and slow per-sample reference loops."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lrpnet.metrics import (aopc, block_mask_to_pixels, block_relevance, cosine_similarity,
                            fold_mean_ci, heatmap_entropy, mean_ci, patch_order, pixel_flipping,
                            relevance_in_mask, relevance_mass_accuracy, relevance_per_step,
                            relevance_rank_accuracy)

# one 2x6 map, three blocks of 2 columns:
#   block 0: 1 2 / 0 1 -> sum 4 (positive 4); block 1: -1 0 / 2 2 -> 3 (4); block 2: 3 -4 / 0 1 -> 0 (4)
R1 = np.array([[[1, 2, -1, 0, 3, -4],
                [0, 1, 2, 2, 0, 1]]], dtype=np.float64)
M1 = np.array([[1, 0, 1]], dtype=np.float32)


def test_block_relevance_by_hand():
    np.testing.assert_allclose(block_relevance(R1, 3), [[4, 4, 4]])
    np.testing.assert_allclose(block_relevance(R1, 3, clip_negative=False), [[4, 3, 0]])
    np.testing.assert_allclose(block_relevance(R1, 1, clip_negative=False), [[7]])


def test_cosine_similarity_by_hand():
    np.testing.assert_allclose(cosine_similarity(R1, M1), [8 / math.sqrt(48 * 2)])
    np.testing.assert_allclose(cosine_similarity(R1, M1, clip_negative=False), [4 / (5 * math.sqrt(2))])
    perfect = np.zeros((1, 2, 6))
    perfect[0, :, :2] = perfect[0, :, 4:] = 1.0
    np.testing.assert_allclose(cosine_similarity(perfect, M1), [1.0])


def test_cosine_zero_and_all_negative_maps():
    zero = np.zeros((2, 2, 6))
    negative = -np.ones((1, 2, 6))
    masks = np.array([[1, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(cosine_similarity(zero, masks), [0.0, 0.0])
    np.testing.assert_array_equal(cosine_similarity(negative, M1), [0.0])  # clipped to zero
    np.testing.assert_allclose(cosine_similarity(negative, M1, clip_negative=False), [-8 / math.sqrt(48 * 2)])
    np.testing.assert_array_equal(cosine_similarity(R1, np.zeros((1, 3))), [0.0])  # empty mask


def test_relevance_in_mask_by_hand():
    np.testing.assert_allclose(relevance_in_mask(R1, M1), [8 / 12])
    np.testing.assert_allclose(relevance_in_mask(R1, M1, clip_negative=False), [4 / 7])
    np.testing.assert_array_equal(relevance_in_mask(np.zeros((1, 2, 6)), M1), [0.0])
    np.testing.assert_array_equal(relevance_in_mask(-np.ones((1, 2, 6)), M1), [0.0])


def test_block_metrics_shape_errors():
    with pytest.raises(ValueError, match=r"width 6 cannot be cut into 4 equal blocks"):
        block_relevance(R1, 4)
    with pytest.raises(ValueError, match=r"R of shape \(1, 2, 6\) with masks \(1, 4\).*width 6"):
        cosine_similarity(R1, np.ones((1, 4)))
    with pytest.raises(ValueError, match=r"N = 1 .*got \(2, 3\)"):
        relevance_in_mask(R1, np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"\(N, H, W\), got \(2, 6\)"):
        block_relevance(R1[0], 3)
    with pytest.raises(ValueError, match="NaN"):
        block_relevance(np.full((1, 2, 6), np.nan), 3)


def _reference_cosine(R, masks):
    """Literal per-sample form of the thesis's score."""
    out = []
    for r, m in zip(R, masks):
        v = np.array([np.maximum(r[:, 28 * b:28 * (b + 1)], 0).sum() for b in range(len(m))])
        denom = np.linalg.norm(v) * np.linalg.norm(m)
        out.append(0.0 if denom == 0 else float(v @ m) / denom)
    return np.array(out)


def test_cosine_matches_reference_loop():
    rng = np.random.default_rng(0)
    R = rng.normal(size=(16, 28, 84))
    R[3] = -np.abs(R[3])  # an all-negative map
    masks = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1]], np.float32)[rng.integers(0, 3, 16)]
    np.testing.assert_allclose(cosine_similarity(R, masks), _reference_cosine(R, masks))


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, (3, 4, 6), elements=st.floats(-5, 5)),
       arrays(np.int8, (3, 3), elements=st.integers(0, 1)))
def test_block_scores_are_bounded_and_scale_invariant(R, masks):
    cos, share = cosine_similarity(R, masks), relevance_in_mask(R, masks)
    assert ((cos >= -1e-12) & (cos <= 1 + 1e-12)).all() and ((share >= 0) & (share <= 1 + 1e-12)).all()
    np.testing.assert_allclose(cosine_similarity(3.0 * R, masks), cos, atol=1e-12)


def test_block_mask_to_pixels():
    pixels = block_mask_to_pixels(M1, (2, 6))
    assert pixels.dtype == bool and pixels.shape == (1, 2, 6)
    np.testing.assert_array_equal(pixels[0], [[1, 1, 0, 0, 1, 1]] * 2)
    with pytest.raises(ValueError, match=r"shape \(2, 7\) with masks \(1, 3\)"):
        block_mask_to_pixels(M1, (2, 7))


def test_relevance_mass_accuracy_by_hand():
    pixels = block_mask_to_pixels(M1, (2, 6))
    np.testing.assert_allclose(relevance_mass_accuracy(R1, pixels), [8 / 12])
    np.testing.assert_array_equal(relevance_mass_accuracy(np.zeros((1, 2, 6)), pixels), [0.0])
    np.testing.assert_array_equal(relevance_mass_accuracy(-np.ones((1, 2, 6)), pixels), [0.0])
    with pytest.raises(ValueError, match=r"pixel_mask must have R's shape \(1, 2, 6\), got \(1, 6\)"):
        relevance_mass_accuracy(R1, pixels[:, 0])


def test_relevance_rank_accuracy_by_hand():
    pixels = block_mask_to_pixels(M1, (2, 6))  # K = 8 mask pixels: columns 0, 1, 4, 5
    # ranking (flat index: value): 4:3, 1:2, 8:2, 9:2, 0:1, 7:1, 11:1, 3:0 | 6:0, 10:0, 2:-1, 5:-4
    # top 8 inside the mask: 4, 1, 0, 7, 11 -> 5 / 8
    np.testing.assert_allclose(relevance_rank_accuracy(R1, pixels), [5 / 8])
    # ties keep row-major order: a zero map takes pixels 0..7, of which 0, 1, 4, 5, 6, 7 are inside
    np.testing.assert_allclose(relevance_rank_accuracy(np.zeros((1, 2, 6)), pixels), [6 / 8])
    np.testing.assert_array_equal(relevance_rank_accuracy(R1, np.zeros((1, 2, 6), bool)), [0.0])
    perfect = np.where(pixels, 1.0, -1.0)
    np.testing.assert_array_equal(relevance_rank_accuracy(perfect, pixels), [1.0])


def test_heatmap_entropy_by_hand():
    uniform = np.ones((1, 2, 2))
    np.testing.assert_allclose(heatmap_entropy(uniform), [math.log(4)])
    np.testing.assert_allclose(heatmap_entropy(uniform, normalize=True), [1.0])
    split = np.array([[[2.0, -2.0], [0.0, 0.0]]])
    np.testing.assert_allclose(heatmap_entropy(split), [math.log(2)])
    np.testing.assert_allclose(heatmap_entropy(split, mode="positive"), [0.0])
    np.testing.assert_array_equal(heatmap_entropy(np.zeros((2, 2, 2))), [0.0, 0.0])
    np.testing.assert_array_equal(heatmap_entropy(-uniform, mode="positive"), [0.0])
    with pytest.raises(ValueError, match="mode must be 'abs' or 'positive', got 'neg'"):
        heatmap_entropy(uniform, mode="neg")


def test_relevance_per_step_by_hand():
    np.testing.assert_allclose(relevance_per_step(R1, 3), [[4, 3, 0]])
    np.testing.assert_allclose(relevance_per_step(R1, 3, normalize=True), [[4 / 7, 3 / 7, 0]])
    np.testing.assert_allclose(relevance_per_step(R1, 3, clip_negative=True), [[4, 4, 4]])
    np.testing.assert_allclose(relevance_per_step(R1, 6), [[1, 3, 1, 2, 3, -3]])
    np.testing.assert_array_equal(relevance_per_step(np.zeros((1, 2, 6)), 2, normalize=True), [[0, 0]])
    with pytest.raises(ValueError, match=r"R of shape \(1, 2, 6\) cut into T=4 steps"):
        relevance_per_step(R1, 4)


# perturbation: 4x4 images, 2x2 patches (ids 0 1 / 2 3)

def _patch_map(values):
    """A 4x4 map whose 2x2 patch p holds values[p] / 4 per pixel (patch sum values[p])."""
    grid = np.asarray(values, dtype=np.float64).reshape(2, 2) / 4
    return np.kron(grid, np.ones((2, 2)))


def test_patch_order():
    R = np.stack([_patch_map([3, 2, 1, 0.5]), _patch_map([0, 1, 1, 5])])
    np.testing.assert_array_equal(patch_order(R, 2), [[0, 1, 2, 3], [3, 1, 2, 0]])
    with pytest.raises(ValueError, match=r"4x4 cannot be cut into 3x3 patches"):
        patch_order(R, 3)


def test_pixel_flipping_by_hand():
    def predict(x):  # class 0 while the bottom-right patch is intact
        return np.stack([x[:, 2:, 2:].sum(axis=(1, 2)), np.zeros(len(x))], axis=1)

    x = np.ones((3, 4, 4), np.float32)
    R = np.stack([_patch_map([3, 2, 1, 0.5]),   # bottom-right ranked last: flips at step 4
                  _patch_map([0, 1, 1, 5]),     # ranked first: step 1
                  _patch_map([1, 0, 3, 2])])    # ranked second: step 2
    np.testing.assert_array_equal(pixel_flipping(predict, x, R, patch=2, max_flips=4), [4, 1, 2])
    # never flipped within max_flips -> max_flips + 1
    np.testing.assert_array_equal(pixel_flipping(predict, x, R, patch=2, max_flips=3), [4, 1, 2])
    np.testing.assert_array_equal(pixel_flipping(predict, x, R, patch=2, max_flips=1), [2, 1, 2])
    np.testing.assert_array_equal(x, 1.0)  # inputs untouched
    np.testing.assert_array_equal(pixel_flipping(predict, x, R, patch=2, max_flips=4, batch_size=2), [4, 1, 2])
    with pytest.raises(ValueError, match=r"max_flips must be in 1..4"):
        pixel_flipping(predict, x, R, patch=2, max_flips=5)
    with pytest.raises(ValueError, match=r"x \(3, 4, 4\) and R \(3, 4, 2\)"):
        pixel_flipping(predict, x, R[:, :, :2], patch=2)
    with pytest.raises(ValueError, match=r"predict must return logits of shape \(N, C\)"):
        pixel_flipping(lambda x: x.sum(axis=(1, 2)), x, R, patch=2, max_flips=4)


WEIGHTS = [1.0, 2.0, 3.0, 4.0]


def _weighted_sum(x):
    """Logit 0 = sum of pixels weighted by their patch's weight; logit 1 is far below."""
    f = (x * _patch_map(WEIGHTS)[None] * 4).sum(axis=(1, 2))
    return np.stack([f, f - 1000], axis=1)


def test_aopc_by_hand():
    # f(x0) = 4 * (1+2+3+4) = 40; removing patch p (+1 -> -1 on 4 pixels) lowers f by 8 * w_p
    x = np.ones((2, 4, 4), np.float32)
    R = np.stack([_patch_map(WEIGHTS), -_patch_map(WEIGHTS)])
    # best order (4, 3, 2, 1): drops 0, 32, 56, 72, 80 -> 240 / 5; worst (1, 2, 3, 4): 0, 8, 24, 48, 80 -> 160 / 5
    np.testing.assert_allclose(aopc(_weighted_sum, x, R, patch=2, steps=4), [48.0, 32.0])
    np.testing.assert_allclose(aopc(_weighted_sum, x, R, patch=2, steps=2), [88 / 3, 32 / 3])
    area, curve = aopc(_weighted_sum, x, R, patch=2, return_curve=True)  # steps clipped to 4 patches
    np.testing.assert_allclose(area, [48.0, 32.0])
    np.testing.assert_allclose(curve[0], [40, 8, -16, -32, -40])
    # an explicit target class: logit 1 = logit 0 - 1000 drops the same way
    np.testing.assert_allclose(aopc(_weighted_sum, x, R, patch=2, steps=4, target=[1, 1]), [48.0, 32.0])
    np.testing.assert_array_equal(x, 1.0)
    with pytest.raises(ValueError, match=r"target must have shape \(2,\)"):
        aopc(_weighted_sum, x, R, patch=2, target=[0])


def test_mean_ci_by_hand():
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0)
    assert half == pytest.approx(4.302652729911275 / math.sqrt(3))  # t_{0.975, 2} * s / sqrt(n), s = 1
    mean, half = mean_ci([[1.0, 10.0], [3.0, 10.0]], axis=0, level=0.9)
    np.testing.assert_allclose(mean, [2.0, 10.0])
    np.testing.assert_allclose(half, [6.313751514675041 * math.sqrt(2) / math.sqrt(2), 0.0])
    mean, half = mean_ci([0.7])
    assert mean == 0.7 and math.isnan(half)
    with pytest.raises(ValueError, match="at least one value"):
        mean_ci([])
    with pytest.raises(ValueError, match=r"level must be in \(0, 1\), got 95"):
        mean_ci([1.0, 2.0], level=95)


def test_fold_mean_ci():
    mean, half = fold_mean_ci([np.array([1.0, 2.0, 3.0]), np.array([3.0, 4.0, 5.0, 4.0, 4.0])])
    assert mean == pytest.approx(3.0)  # fold means 2 and 4, each fold weighs the same
    assert half == pytest.approx(12.706204736174698)  # t_{0.975, 1} * sqrt(2) / sqrt(2)
    mean, half = fold_mean_ci([0.9, 0.8, 0.85])
    assert mean == pytest.approx(0.85)
