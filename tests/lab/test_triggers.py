"""Triggers: pixels placed, the rest of the image untouched, any size, RGB, the blend, the
separated set's corners."""

from __future__ import annotations

import numpy as np
import pytest

from wobbledetect.lab import TRIGGER_NUMBERS, TRIGGER_SETS, TRIGGERS, BlendTrigger, get_trigger
from wobbledetect.lab.triggers import PatchTrigger

PATCHES = list(TRIGGER_SETS["fig3"])
SEPARATED = list(TRIGGER_SETS["separated"])


def test_eight_distinct_patches_numbered_like_fig3():
    assert len(PATCHES) == 8 and list(TRIGGER_NUMBERS) == list(range(1, 9))
    shapes = {TRIGGERS[n].pattern.shape for n in PATCHES}
    assert len(shapes) >= 4  # different sizes
    assert TRIGGERS["smiley"].pattern.shape == max(shapes)  # the larger smiley
    patterns = {TRIGGERS[n].pattern.tobytes() + bytes(TRIGGERS[n].pattern.shape) for n in PATCHES}
    assert len(patterns) == 8


@pytest.mark.parametrize("name", PATCHES)
@pytest.mark.parametrize("shape", [(3, 1, 28, 28), (2, 3, 32, 32), (4, 8, 8), (1, 1, 9, 13)])
def test_patch_written_in_the_lower_right_corner_only(name, shape):
    trigger = TRIGGERS[name]
    h, w = trigger.pattern.shape
    rng = np.random.RandomState(0)
    X = rng.uniform(0.2, 0.8, size=shape).astype(np.float32)
    out = trigger(X)
    assert out.shape == X.shape and out.dtype == np.float32
    corner = out[..., shape[-2] - h :, shape[-1] - w :]
    np.testing.assert_array_equal(corner, np.broadcast_to(trigger.pattern, corner.shape))
    mask = trigger.mask(shape)
    np.testing.assert_array_equal(out[~mask], X[~mask])  # nothing else changed
    assert mask.sum() == h * w * np.prod(shape[:-2])
    np.testing.assert_array_equal(X, rng.__class__(0).uniform(0.2, 0.8, size=shape).astype(np.float32))


def test_patch_pixels_are_exact_pixel_art():
    out = get_trigger("plus")(np.full((1, 6, 6), 0.5, np.float32))[0]
    expected_corner = np.array([
        [0, 0, 1, 0, 0],
        [0, 0, 1, 0, 0],
        [1, 1, 1, 1, 1],
        [0, 0, 1, 0, 0],
        [0, 0, 1, 0, 0],
    ], dtype=np.float32)
    np.testing.assert_array_equal(out[1:, 1:], expected_corner)
    np.testing.assert_array_equal(out[0], np.full(6, 0.5))
    np.testing.assert_array_equal(out[:, 0], np.full(6, 0.5))


def test_rgb_channels_all_get_the_pattern():
    out = get_trigger("square")(np.zeros((1, 3, 10, 10), np.float32))
    np.testing.assert_array_equal(out[0, :, 7:, 7:], np.ones((3, 3, 3)))
    assert out.sum() == 27


def test_too_small_images_are_a_clear_error():
    with pytest.raises(ValueError, match=r"'smiley' \(7x7, margin 0\) does not fit images of 5x5"):
        get_trigger("smiley")(np.zeros((1, 5, 5)))


def test_blend_mixes_the_whole_image_with_a_fixed_pattern():
    blend = BlendTrigger(alpha=0.25, seed=3)
    X = np.random.RandomState(1).uniform(size=(4, 3, 6, 6)).astype(np.float32)
    out = blend(X)
    pattern = blend.pattern((3, 6, 6))
    np.testing.assert_allclose(out, 0.75 * X + 0.25 * pattern, rtol=1e-6)
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert not np.array_equal(BlendTrigger(seed=4).pattern((3, 6, 6)), pattern)
    assert BlendTrigger().mask((3, 6, 6)).all()


def test_get_trigger_by_name_number_or_object():
    assert get_trigger(1) is TRIGGERS["square"] and get_trigger(5) is TRIGGERS["smiley"]
    assert get_trigger("blend") is TRIGGERS["blend"]
    assert get_trigger(TRIGGERS["frame"]) is TRIGGERS["frame"]
    with pytest.raises(ValueError, match="Unknown trigger 'heart'"):
        get_trigger("heart")
    with pytest.raises(ValueError, match="Unknown trigger 9"):
        get_trigger(9)


@pytest.mark.parametrize("shape", [(5, 1, 28, 28), (3, 3, 32, 32), (2, 1, 9, 13)])
def test_blend_is_the_same_for_every_image_of_a_batch(shape):
    blend = BlendTrigger(alpha=0.1)
    X = np.random.RandomState(2).uniform(size=shape).astype(np.float32)
    out = blend(X)
    assert out.shape == X.shape and out.dtype == np.float32
    for i in range(shape[0]):
        np.testing.assert_array_equal(out[i], blend(X[i : i + 1])[0])
    # Every pixel moves toward the pattern by alpha, and stays in [0, 1].
    np.testing.assert_allclose(out - X, 0.1 * (blend.pattern(shape[1:]) - X), atol=1e-6)
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_patch_margin_keeps_a_border():
    from wobbledetect.lab import PatchTrigger

    trigger = PatchTrigger("dot", np.ones((2, 2), np.float32), margin=1)
    out = trigger(np.zeros((1, 1, 6, 6), np.float32))[0, 0]
    np.testing.assert_array_equal(np.argwhere(out == 1), [[3, 3], [3, 4], [4, 3], [4, 4]])
    assert trigger.mask((1, 6, 6)).sum() == 4


def test_every_trigger_is_a_no_op_on_its_own_output():
    X = np.random.RandomState(3).uniform(size=(2, 3, 16, 16)).astype(np.float32)
    for name in PATCHES + SEPARATED:
        once = TRIGGERS[name](X)
        np.testing.assert_array_equal(TRIGGERS[name](once), once)


def test_trigger_sets_name_every_patch_once():
    assert list(TRIGGERS) == [*PATCHES, "blend", *SEPARATED]
    assert PATCHES == list(TRIGGER_NUMBERS.values()) and len(SEPARATED) == 4


@pytest.mark.parametrize("name, rows, cols", [
    ("ul-square", slice(1, 4), slice(1, 4)), ("ur-checker", slice(1, 5), slice(6, 10)),
    ("ll-cross", slice(4, 9), slice(1, 6)), ("lr-plus", slice(4, 9), slice(5, 10)),
])
def test_separated_patches_sit_in_four_corners_one_pixel_in(name, rows, cols):
    X = np.full((2, 1, 10, 11), 0.5, np.float32)
    out = get_trigger(name)(X)
    block = out[..., rows, cols]
    np.testing.assert_array_equal(block, np.broadcast_to(TRIGGERS[name].pattern, block.shape))
    mask = TRIGGERS[name].mask(X.shape)
    np.testing.assert_array_equal(out[~mask], X[~mask])
    assert mask[..., rows, cols].all() and mask.sum() == block.size


def test_separated_patches_do_not_overlap():
    masks = [TRIGGERS[name].mask((28, 28)) for name in SEPARATED]
    assert not np.any(np.sum(masks, axis=0) > 1)


def test_unknown_corner_is_a_clear_error():
    with pytest.raises(ValueError, match="'corner' parameter must be one of"):
        PatchTrigger("dot", np.ones((2, 2), np.float32), corner="middle")
