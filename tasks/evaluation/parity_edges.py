"""The edge cases of an evaluation parity pack (``edges.json``: what the reference returns or raises), checked
under the reference protocol.

The pack records results, not inputs, so each known case is rebuilt from what its name and result say (a 3-frame
walk, a static person, a static camera, a count mismatch, no predictions, ...) and checked on what the recorded
result pins down: lengths, inf, exact values, the exception. A case without a checker here is listed, not failed.
"""

from __future__ import annotations

import itertools

import numpy as np

from tasks.evaluation.metrics.errors import DegenerateBoxError, NoValidPixelsError

# the reference's exception -> ours (evo's own exceptions are raised as they are)
REFERENCE_EXCEPTIONS = {"AssertionError": DegenerateBoxError, "ZeroDivisionError": NoValidPixelsError}


def _walk(n: int, rng: np.random.Generator, static: bool = False) -> tuple[np.ndarray, np.ndarray]:
    base = rng.normal(0, 0.3, (1, 24, 3))
    step = np.zeros((n, 1, 3)) if static else np.arange(n)[:, None, None] * np.array([0.03, 0.0, 0.01])
    gt = base + step
    return gt + rng.normal(0, 0.01, gt.shape), gt


def _raises(fn, expected: str) -> tuple[bool, str]:
    name, _, message = expected.partition(":")
    try:
        fn()
    except Exception as err:  # noqa: BLE001 - the check is which exception
        mapped = REFERENCE_EXCEPTIONS.get(name)
        ok = isinstance(err, mapped) if mapped else type(err).__name__ == name and str(err).strip() == message.strip()
        return ok, f"raised {type(err).__name__}: {err}"
    return False, "raised nothing"


def _eval_global_3_frames(result, rng):
    from tasks.evaluation.metrics.world import eval_global

    pred, gt = _walk(3, rng)
    feet = np.zeros((3, 4, 3))
    out = eval_global(pred, gt, feet, feet)
    same_len = all(len(out[k]) == len(v) for k, v in result.items())
    fs_ok = np.array_equal(out["fs"], np.asarray(result["fs"], float))
    return same_len and fs_ok, f"lengths {[len(v) for v in out.values()]}, fs {out['fs'].tolist()}"


def _eval_global_static_person_rte(result, rng):
    from tasks.evaluation.metrics.world import eval_global

    n = len(result["rte"])
    pred, gt = _walk(n, rng, static=True)
    out = eval_global(pred, gt, np.zeros((n, 4, 3)), np.zeros((n, 4, 3)))
    ok = all(np.array_equal(out[k], np.asarray([float(x) for x in result[k]])) for k in ("rte", "rte_scaled"))
    return ok and len(out["wa2_mpjpe"]) == n, f"rte {out['rte'].tolist()}"


def _summary_drops(result, rng):
    from tasks.evaluation.metrics.summary import parse_log_lines, reference_average

    total, avgs = reference_average(parse_log_lines(result["log"]))
    mine = [total, *avgs]
    return mine == result["parsed"], f"parsed {mine}"


def _prf1(result, rng, name):
    from tasks.evaluation.metrics.matching import prf1_pct

    if name == "prf1_count0":
        mine = list(prf1_pct(0, 0, 0))
        return mine == list(result) and all(type(a) is type(b) for a, b in zip(mine, result, strict=True)), str(mine)
    if name == "prf1_all_missed":
        mine = list(prf1_pct(5, 5, 1))
        return mine == list(result), str(mine)
    found = []  # prf1_rounding: each recorded triple must come out exactly from some (count, miss, fp)
    for target in result:
        hit = next(((c, m, f) for c, m, f in itertools.product(range(1, 301), range(0, 6), range(0, 6))
                    if m < c and list(prf1_pct(c, m, f)) == list(target)), None)
        found.append(hit)
    return all(found), f"inputs {found}"


def _match_degenerate_box(result, rng):
    from tasks.evaluation.metrics.matching import match_2d_greedy

    gt = rng.uniform(0, 100, (1, 24, 2))
    flat = gt.copy()
    flat[..., 0] = 50.0  # zero-width box
    return _raises(lambda: match_2d_greedy(flat, gt), result)


def _match_no_predictions(result, rng):
    from tasks.evaluation.metrics.matching import match_2d_greedy

    gt = rng.uniform(0, 100, (len(result[2]), 24, 2))
    m = match_2d_greedy(np.zeros((0, 24, 2)), gt)
    mine = [m.matches.tolist(), m.false_positives.tolist(), m.misses.tolist()]
    return mine == result, str(mine)


def _depth_all_invalid(result, rng):
    from tasks.evaluation.metrics.depth import average_depth, depth_metrics

    gt = -np.ones((2, 4, 4))
    seqs = [depth_metrics(np.ones((2, 4, 4), np.float32), gt, "scale", 70.0) for _ in range(2)]
    return _raises(lambda: average_depth(seqs), result)


def _depth_invalid_sequence(result, rng):
    from tasks.evaluation.metrics.depth import depth_metrics
    from tasks.evaluation.metrics.results import METRICS

    out = depth_metrics(np.ones((2, 4, 4), np.float32), np.zeros((2, 4, 4)), "scale", 70.0)
    mine = {METRICS[k].ref_key if k in METRICS else k: v for k, v in out.items()}
    return mine == result, str(mine)


def _depth_default_max_depth(result, rng):
    from tasks.evaluation.metrics.depth import DEFAULT_MAX_DEPTH_M, depth_metrics

    gt = np.full((1, 3, 3), 75.0)  # between Bonn's 70 m and the default
    pred = np.full((1, 3, 3), 5.0, np.float32)
    counted = depth_metrics(pred, gt, "metric")["valid_pixels"]
    return DEFAULT_MAX_DEPTH_M == 80.0 and counted == 9, f"default {DEFAULT_MAX_DEPTH_M} m, 75 m GT counted: {counted}"


def _camera_static(result, rng):
    from evo.core.trajectory import PoseTrajectory3D

    from tasks.evaluation.metrics.camera import evaluate_trajectory

    n = 20
    wxyz = np.tile([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], (n, 1))
    gt = PoseTrajectory3D(positions_xyz=rng.normal(0, 1, (n, 3)), orientations_quat_wxyz=wxyz[:, 3:],
                          timestamps=np.arange(n) * 0.1)
    return _raises(lambda: evaluate_trajectory(wxyz, np.arange(n), gt), result)


def _camera_count_mismatch(result, rng):
    from evo.core.trajectory import PoseTrajectory3D

    from tasks.evaluation.metrics.camera import evaluate_trajectory

    n = 20
    pos = np.cumsum(rng.normal(0, 0.1, (n, 3)), 0)
    wxyz = np.concatenate([pos, np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))], 1)
    gt = PoseTrajectory3D(positions_xyz=pos, orientations_quat_wxyz=wxyz[:, 3:], timestamps=100 + np.arange(n) * 0.1)
    return _raises(lambda: evaluate_trajectory(wxyz[:-1], np.arange(n - 1), gt), result)


CHECKERS = {
    "eval_global_3_frames": _eval_global_3_frames,
    "eval_global_static_person_rte": _eval_global_static_person_rte,
    "summary_drops_sequences_with_inf_or_nan": _summary_drops,
    "prf1_count0": lambda r, g: _prf1(r, g, "prf1_count0"),
    "prf1_all_missed": lambda r, g: _prf1(r, g, "prf1_all_missed"),
    "prf1_rounding": lambda r, g: _prf1(r, g, "prf1_rounding"),
    "match_degenerate_box": _match_degenerate_box,
    "match_no_predictions": _match_no_predictions,
    "depth_all_sequences_invalid_average": _depth_all_invalid,
    "depth_invalid_sequence_result": _depth_invalid_sequence,
    "depth_evaluation_default_max_depth_is_80": _depth_default_max_depth,
    "camera_static_position_umeyama": _camera_static,
    "camera_count_mismatch_with_frame_index_stamps": _camera_count_mismatch,
}


def check_edges(edges: dict, rep) -> None:
    """One check per edge case of `edges` (unknown cases listed as skipped)."""
    for name, case in edges.items():
        checker = CHECKERS.get(name)
        expected = case.get("raises", case.get("result"))
        if checker is None:
            rep.note("edge cases skipped (no checker)", True, name, "info")
            continue
        try:
            ok, text = checker(expected, np.random.default_rng(0))
        except Exception as err:  # noqa: BLE001 - an unexpected error fails the case, with its message
            ok, text = False, f"{type(err).__name__}: {err}"
        rep.note("edge cases (reference protocol)", ok, f"{name}: {text}")
