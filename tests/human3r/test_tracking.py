"""Tracker: ids follow people across frames (not their order), new people get new ids, unmatched tracks are
remembered (reference behaviour) up to `max_tracks`, empty frames change nothing; Sinkhorn marginals."""

import pytest
import torch

from human3r.config import TrackerConfig
from human3r.tracking import TrackState, assign_track_ids, log_optimal_transport

DIM = 16


@pytest.fixture(scope="module")
def people() -> torch.Tensor:
    """(1, 4, DIM) tokens of four people, pairwise 20+ apart (decoder tokens of different people are far apart
    compared with the dustbin score of 10; tokens of one person move little from frame to frame)."""
    tokens = 5 * torch.randn(1, 4, DIM, generator=torch.Generator().manual_seed(0))
    assert torch.cdist(tokens, tokens).add(torch.eye(4) * 100).min() > 20
    return tokens


def _jitter(tokens: torch.Tensor, seed: int = 1) -> torch.Tensor:
    return tokens + 0.1 * torch.randn(tokens.shape, generator=torch.Generator().manual_seed(seed))


def _first_frame(people: torch.Tensor, cfg: TrackerConfig = TrackerConfig()) -> TrackState:
    ids, tracks = assign_track_ids(people[:, :3], TrackState(), cfg)
    assert ids.tolist() == [[0, 1, 2]] and tracks.max_id == 2
    return tracks


def test_first_frame_numbers_people_in_detection_order(people):
    ids, tracks = assign_track_ids(people[:, :3], TrackState(), TrackerConfig())
    assert ids.dtype == torch.long and ids.tolist() == [[0, 1, 2]]
    assert tracks.max_id == 2 and tracks.ids.tolist() == [[0, 1, 2]]
    torch.testing.assert_close(tracks.tokens, people[:, :3])


def test_same_people_in_permuted_order_keep_their_ids(people):
    tracks = _first_frame(people)
    ids, tracks = assign_track_ids(_jitter(people[:, [2, 0, 1]]), tracks, TrackerConfig())
    assert ids.tolist() == [[2, 0, 1]]
    assert tracks.max_id == 2


def test_new_person_gets_the_next_id(people):
    tracks = _first_frame(people)
    ids, tracks = assign_track_ids(_jitter(people[:, [1, 3, 0]]), tracks, TrackerConfig())
    assert ids.tolist() == [[1, 3, 0]]
    assert tracks.max_id == 3
    ids, tracks = assign_track_ids(_jitter(people[:, [3]], seed=2), tracks, TrackerConfig())
    assert ids.tolist() == [[3]] and tracks.max_id == 3  # and keeps it on the next frame


def test_unmatched_track_is_remembered_and_found_again(people):
    tracks = _first_frame(people)
    ids, tracks = assign_track_ids(people[:, [0, 3]], tracks, TrackerConfig())
    assert ids.tolist() == [[0, 3]]
    # memory: this frame's people first, then the tracks that went unmatched (1 and 2), never pruned
    assert tracks.ids.tolist() == [[0, 3, 1, 2]] and tracks.tokens.shape == (1, 4, DIM)
    ids, tracks = assign_track_ids(_jitter(people[:, [1]]), tracks, TrackerConfig())
    assert ids.tolist() == [[1]]  # person 1 was absent for a frame and gets its old id back
    assert tracks.max_id == 3


def test_max_tracks_caps_the_memory(people):
    cfg = TrackerConfig(max_tracks=2)
    tracks = _first_frame(people, cfg)
    assert tracks.ids.shape == (1, 2)  # already capped on the first frame: the third person is not remembered
    ids, tracks = assign_track_ids(people[:, [0, 3]], tracks, cfg)
    assert ids.tolist() == [[0, 3]] and tracks.ids.tolist() == [[0, 3]]  # unmatched track 1 dropped by the cap
    ids, tracks = assign_track_ids(_jitter(people[:, [1]]), tracks, cfg)
    assert ids.tolist() == [[4]]  # forgotten, so person 1 comes back as someone new
    assert tracks.ids.shape[1] <= 2 and tracks.max_id == 4


@pytest.mark.parametrize("start", ["empty", "after_a_frame"])
def test_frame_without_people_leaves_the_memory_unchanged(people, start):
    tracks = TrackState() if start == "empty" else _first_frame(people)
    ids, after = assign_track_ids(torch.zeros(1, 0, DIM), tracks, TrackerConfig())
    assert ids.shape == (1, 0) and ids.dtype == torch.long
    assert after is tracks


@pytest.mark.parametrize("m,n", [(3, 5), (4, 2), (1, 1)])
def test_log_optimal_transport_marginals(m, n):
    """exp of the (B, m+1, n+1) log plan: each real row and column carries mass 1, the dustbins the rest."""
    scores = torch.randn(2, m, n, generator=torch.Generator().manual_seed(m * 10 + n), dtype=torch.float64)
    plan = log_optimal_transport(scores, alpha=-1.0, iters=200).exp()
    assert plan.shape == (2, m + 1, n + 1)
    expected_cols = torch.tensor([1.0] * n + [m], dtype=torch.float64).expand(2, -1)
    expected_rows = torch.tensor([1.0] * m + [n], dtype=torch.float64).expand(2, -1)
    torch.testing.assert_close(plan.sum(dim=1), expected_cols, rtol=0, atol=1e-9)  # columns: exact after the v step
    torch.testing.assert_close(plan.sum(dim=2), expected_rows, rtol=0, atol=1e-6)
