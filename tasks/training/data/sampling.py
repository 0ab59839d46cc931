"""Which frames make a sample, and which views get a ray map: the reference's random draws, in its exact order.

Every draw comes from the sample's generator (``default_rng(seed + idx)`` when seeded), so a sample is a pure
function of (seed, idx); the order of the draws is part of the contract (the ``rng`` value each view carries is the
next 4 bytes of the same generator after all of them).

`pick_frames` is the reference's ``get_seq_from_start_id`` for video sources (``video_prob = fix_interval_prob =
1``, as BEDLAM uses it): an ordered video with one fixed interval. `draw_inputs` is ``get_img_and_ray_masks`` with
the probabilities BEDLAM passes (0.85 image only, 0.15 image and ground-truth ray map).
"""

from __future__ import annotations

import itertools

import numpy as np

IMAGE_ONLY_PROB = 0.85  # a view other than the first is image-only with this probability, else image + ray map


def start_positions(n_frames: int, num_views: int, allow_repeat: bool) -> int:
    """How many start frames a sequence of `n_frames` offers (0: too short to use).

    Without repeats a sample needs `num_views` distinct frames after its start; with repeats (the real run) a start
    needs only ``max(num_views // 3, 3)`` frames, and the last starts repeat frames."""
    cut_off = max(num_views // 3, 3) if allow_repeat else num_views
    return max(n_frames - cut_off + 1, 0) if n_frames >= cut_off else 0


def pick_frames(rng: np.random.Generator, num_views: int, start: int, n_frames: int, max_interval: int = 4,
                min_interval: int = 1) -> list[int]:
    """Positions (into the sequence's frames) of the `num_views` views of a sample starting at position `start`.

    With enough frames after the start (``r = n_frames - 1 - start >= num_views - 1``): consecutive frames if
    ``r == num_views - 1`` (no draw); otherwise ``num_views - 1`` interval draws that are discarded, two uniform draws
    (video? fixed interval?, both always yes), then the interval ``k`` and the frames ``start, start + k, ...``.
    With fewer (only with repeats): a new start at or before `start`, the available frames at a fixed interval,
    repeated to `num_views` views (``[a, b, c, a]``).
    """
    if num_views < 2:
        raise ValueError(f"a sample needs at least 2 views (got {num_views})")
    remaining = n_frames - 1 - start
    if remaining >= num_views - 1:
        if remaining == num_views - 1:
            return list(range(start, start + num_views))
        max_interval = min(max_interval, 2 * remaining // (num_views - 1))
        for _ in range(num_views - 1):  # drawn and discarded: the fixed interval replaces them
            rng.choice(range(min_interval, max_interval + 1))
        rng.random()  # video (always, video_prob = 1)
        rng.random()  # fixed interval (always, fix_interval_prob = 1)
        step = rng.choice(range(1, min(remaining // (num_views - 1) + 1, max_interval + 1)))
        positions = list(itertools.accumulate([start] + [step] * (num_views - 1)))
        # the reference tops the views up with random distinct frames when some fell off the end: never with a
        # fixed interval, but the (empty) draw is kept so the generator is used exactly as it does
        candidates = [p for p in range(start, n_frames) if p not in positions]
        rng.choice(candidates, num_views - len(positions), replace=False)
        return sorted(int(p) for p in positions)
    if remaining < 2:
        raise ValueError(f"start {start} of {n_frames} frames leaves too few frames even with repeats")
    unique = remaining
    new_start = int(rng.choice(np.arange(start + 1)))
    new_max = min(max_interval, (n_frames - 1 - new_start) // (unique - 1))
    for _ in range(unique - 1):  # discarded, as above
        rng.choice(range(1, new_max + 1))
    rng.random()  # revisit (unused when video_prob = 1)
    rng.random()  # video (always)
    rng.random()  # fixed interval (always)
    step = rng.choice(range(1, new_max + 1))
    positions = [int(p) for p in itertools.accumulate([new_start] + [step] * (unique - 1))]
    repeats = num_views // unique
    return positions * repeats + positions[:num_views - len(positions) * repeats]


def draw_inputs(rng: np.random.Generator, view: int) -> tuple[bool, bool]:
    """(img_mask, ray_mask) of a view: the first view is image-only without a draw; any other draws once and is
    image-only with probability 0.85, else image **and** ground-truth ray map."""
    if view == 0:
        return True, False
    return (True, False) if rng.random() < IMAGE_ONLY_PROB else (True, True)
