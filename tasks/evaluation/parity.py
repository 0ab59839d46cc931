"""Parity harness for the evaluation metrics: ``human3r parity eval PACK_DIR`` (``python -m tasks.evaluation.parity``).

Runs every fixture of an evaluation parity pack (a folder in the format of ``tests/fixtures/eval_parity``: human
camera-frame and world metrics, the launch loop over sequences with its log and summary, the matcher, evo's camera
metrics, depth metrics and the Bonn folder, and the edge cases of ``edges.json``) under the ``reference`` protocol,
and prints the worst error per metric against the pack's ``tolerances.json``. Exit code 1 when anything fails, 0
when everything passes. Sequences, sets and cases are discovered from the pack's files, none is named here.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tasks.evaluation.metrics.camcoord import PELVIS_LSP14, PELVIS_SMPL24, eval_camcoord
from tasks.evaluation.metrics.humans import HumanFrame, evaluate_human_sequence, project_px
from tasks.evaluation.metrics.results import BY_REF_KEY, METRICS
from tasks.evaluation.metrics.summary import logged_values, summarize_humans
from tasks.evaluation.metrics.world import eval_global


@dataclass
class Check:
    """The worst error of one quantity over a pack, against its tolerance."""

    name: str
    tolerance: str
    worst: float = 0.0  # the largest error seen (absolute, in the quantity's units)
    worst_rel: float = 0.0
    n: int = 0
    failures: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failures == 0


class Report:
    def __init__(self) -> None:
        self.checks: dict[str, Check] = {}

    def check(self, name: str, tolerance: str) -> Check:
        return self.checks.setdefault(name, Check(name, tolerance))

    def close(self, name: str, mine, ref, rel: float = 0.0, abs_: float = 0.0) -> None:
        """Element-wise: pass when |a - b| <= abs or <= rel |b| (inf/nan must match)."""
        c = self.check(name, f"rel {rel:g} / abs {abs_:g}" if rel or abs_ else "exact")
        a, b = np.atleast_1d(np.asarray(mine, np.float64)), np.atleast_1d(np.asarray(ref, np.float64))
        if a.shape != b.shape:
            c.failures += 1
            c.notes.append(f"shape {a.shape} vs reference {b.shape}")
            return
        same_nonfinite = (~np.isfinite(a) | ~np.isfinite(b)) & ((a == b) | (np.isnan(a) & np.isnan(b)))
        with np.errstate(invalid="ignore"):
            err = np.where(same_nonfinite, 0.0, np.abs(a - b))
        err = np.nan_to_num(err, nan=np.inf)
        bad = ~((err <= abs_) | (err <= rel * np.abs(np.nan_to_num(b))))
        c.n += a.size
        c.failures += int(bad.sum())
        if err.size:
            c.worst = max(c.worst, float(err.max()))
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(err == 0, 0.0, err / np.abs(b))
            c.worst_rel = max(c.worst_rel, float(np.nan_to_num(r, nan=np.inf).max()))

    def equal(self, name: str, mine, ref) -> None:
        c = self.check(name, "exact")
        c.n += 1
        if not _same(mine, ref):
            c.failures += 1
            c.notes.append(f"{mine!r} vs reference {ref!r}")

    def note(self, name: str, ok: bool, text: str, tolerance: str = "as recorded") -> None:
        c = self.check(name, tolerance)
        c.n += 1
        if not ok:
            c.failures += 1
            c.notes.append(text)

    def print(self, out=None) -> bool:
        out = out or sys.stdout
        width = max(len(n) for n in self.checks) + 2
        out.write(f"{'check':<{width}}{'n':>7}  {'worst abs':>11}  {'worst rel':>10}  {'tolerance':<28}status\n")
        for c in self.checks.values():
            out.write(f"{c.name:<{width}}{c.n:>7}  {c.worst:>11.3g}  {c.worst_rel:>10.3g}  {c.tolerance:<28}"
                      f"{'ok' if c.ok else 'FAIL'}\n")
            for note in c.notes[:3] if not c.ok else []:
                out.write(f"    {note}\n")
        failed = [c.name for c in self.checks.values() if not c.ok]
        out.write(f"{len(self.checks) - len(failed)} passed, {len(failed)} failed\n")
        return not failed


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple, np.ndarray)) or isinstance(b, (list, tuple, np.ndarray)):
        a, b = np.asarray(a, dtype=object).tolist(), np.asarray(b, dtype=object).tolist()
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) if (isinstance(a, float) and math.isnan(a)) else a == b
    return a == b


def _seqs(z, suffix: str) -> list[str]:
    return sorted({k.split("__")[0] for k in z.files if k.endswith(suffix)}, key=lambda s: (len(s), s))


# --- human -----------------------------------------------------------------------------------------------------


def check_camcoord(pack: Path, tol: dict, rep: Report) -> None:
    z = np.load(pack / "human/camcoord.npz")
    for tag in _seqs(z, "__me_mpjpe"):
        n_joints = int(re.findall(r"\d+", tag)[-1])
        pelvis = PELVIS_SMPL24 if n_joints == 24 else PELVIS_LSP14
        out = eval_camcoord(z[f"pred_j{n_joints}"], z[f"gt_j{n_joints}"], z["pred_v"], z["gt_v"], pelvis)
        for k, v in out.items():
            rep.close(f"camcoord {BY_REF_KEY[k].name} (mm)", v, z[f"{tag}__{k}"], tol[k]["rel"], tol[k]["abs_mm"])


def _world_close(rep: Report, out: dict, ref: dict, tol: dict, where: str) -> None:
    for k, v in out.items():
        t = tol[k]
        rep.close(f"world {BY_REF_KEY[k].name}{where}", v, ref[k], t["rel"], t["abs"])
        if len(v):
            rep.close(f"world {BY_REF_KEY[k].name} mean{where}", np.mean(v), np.mean(ref[k]), t["mean_rel"])


def check_global(pack: Path, tol: dict, rep: Report) -> None:
    z = np.load(pack / "human/global.npz")
    out = eval_global(z["pred_j3d"], z["target_j3d"], z["pred_feet"], z["target_feet"])
    _world_close(rep, out, {k: z[f"out__{k}"] for k in out}, tol, "")


def aggregate_frames(z, seq: str) -> list[HumanFrame]:
    """The pack's aggregate sequence as the launch loop sees it: a false-positive frame has an extra (poster)
    detection first, at the person's prediction + fp_offset; a missed frame has no prediction."""
    p = f"{seq}__"
    z = {k: z[k] for k in z.files if k.startswith(p) or k.startswith("K_")}  # read each array once
    miss, fp = set(z[p + "miss_frames"].tolist()), set(z[p + "fp_frames"].tolist())
    frames = []
    for f in range(len(z[p + "gt_c_j"])):
        pj, pv = z[p + "pred_c_j"][f][None], z[p + "pred_c_feet"][f][None]
        if f in miss:
            pj, pv = pj[:0], pv[:0]
        if f in fp:
            pj, pv = np.concatenate([pj + z[p + "fp_offset"], pj]), np.concatenate([pv + z[p + "fp_offset"], pv])
        gj = z[p + "gt_c_j"][f][None]
        frames.append(HumanFrame(pj, pv, project_px(pj, z["K_pred"]), gj, z[p + "gt_c_feet"][f][None],
                                 project_px(gj, z["K_gt"]), z[p + "T_c2w_pred"][f], z[p + "gt_w_j"][f][None],
                                 z[p + "gt_w_feet"][f][None]))
    return frames


def check_aggregate(pack: Path, tol: dict, rep: Report) -> None:
    z = np.load(pack / "human/aggregate.npz")
    meta = json.loads((pack / "human/aggregate.json").read_text())
    by_name = {s["name"]: s for s in meta["sequences"]}
    names = list(by_name)
    sequences = {}
    for i, seq in enumerate(_seqs(z, "__gt_c_j")):
        name = names[i]
        exp = by_name[name]
        res = evaluate_human_sequence(aggregate_frames(z, seq), PELVIS_SMPL24, world=True)
        sequences[name] = res
        rep.equal("aggregate counters", dict(res.counter), exp["counter"])
        rep.equal("aggregate frames in world metrics", res.frames_in_world, exp["frames_in_global_batch"])
        for k in ("me_mpjpe", "ca_mpjpe", "pa_mpjpe", "me_pve", "ca_pve", "pa_pve", "rt_error"):
            rep.close(f"aggregate camcoord {BY_REF_KEY[k].name} (mm)", res.entries(k), z[f"{seq}__camcoord__{k}"],
                      tol[k]["rel"], tol[k]["abs_mm"])
        g = {k: z[f"{seq}__global_in__{k}"] for k in ("pred_j3d", "target_j3d", "pred_feet", "target_feet")}
        out = eval_global(g["pred_j3d"], g["target_j3d"], g["pred_feet"], g["target_feet"])
        _world_close(rep, out, {k: z[f"{seq}__global__{k}"] for k in out}, tol, " (aggregate)")
        shown = logged_values(res)
        for k, v in exp["seq_means"].items():
            spec = BY_REF_KEY[k]
            rep.close("aggregate per-sequence log values", shown[spec.name], float(f"{v:.1f}"),
                      abs_=tol["per_sequence_log_values"]["abs"])
        for m, key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1")):
            rep.equal("aggregate precision/recall/F1", shown[m], exp[key])
    log_path, summary_path = pack / "human/aggregate_log.txt", pack / "human/aggregate_summary.txt"
    log = log_path.read_text() if log_path.exists() else ""
    dataset = log.split("-", 1)[0] if log else "benchmark"
    ev = summarize_humans(dataset, sequences, world=True)
    avg = ev.averages()
    summary = meta["summary"]
    rep.equal("aggregate total humans", sum(s.counter["n_human"] for s in sequences.values()), summary["total_humans"])
    for m in avg:
        label = METRICS[m].label
        rep.close("aggregate summary", avg[m], summary[label], abs_=tol["summary"]["abs"])
    for what, path, text in (("log", log_path, ev.text["log"]), ("summary", summary_path, ev.text["summary"])):
        if path.exists():  # a legitimate rounding flip may change a digit: reported, not failed
            same = text == path.read_text()
            rep.note(f"aggregate {what} text (info)", True, "byte-identical" if same else "differs", "info")


def check_matching(pack: Path, rep: Report) -> None:
    from tasks.evaluation.metrics.matching import match_2d_greedy, pair_cost_px, prf1_pct

    z = np.load(pack / "human/matching.npz")
    for case in _seqs(z, "__pred_j2d"):
        pred, gt = z[f"{case}__pred_j2d"], z[f"{case}__gt_j2d"]
        m = match_2d_greedy(pred, gt)
        rep.equal("matching (matches, false positives, misses)",
                  [m.matches.tolist(), m.false_positives.tolist(), m.misses.tolist()],
                  [z[f"{case}__best_match"].tolist(), z[f"{case}__false_positives"].tolist(),
                   z[f"{case}__misses"].tolist()])
        cost = [[pair_cost_px(p, g) for g in gt] for p in pred]
        rep.close("matching spectral-norm cost (px)", cost, z[f"{case}__cost_spectral"], rel=1e-6)
        prf = prf1_pct(len(gt), len(m.misses), len(m.false_positives))
        rep.equal("matching precision/recall/F1", list(prf), z[f"{case}__prf1"].tolist())


# --- camera, depth ----------------------------------------------------------------------------------------------


def check_camera(pack: Path, tol: dict, rep: Report) -> None:
    from tasks.evaluation.metrics.camera import (
        evaluate_trajectory,
        read_gt_tum,
        read_pred_traj,
        summarize_trajectories,
    )

    meta = json.loads((pack / "camera/camera.json").read_text())
    results = {}
    for s in meta["sequences"]:
        tag = s["tag"]
        stamps, rows = read_pred_traj(pack / f"camera/{tag}/pred_traj.txt")
        res = evaluate_trajectory(rows, stamps, read_gt_tum(pack / f"camera/{tag}/groundtruth_{s['n_gt']}.txt"), tag)
        results[tag] = res
        for m, key in (("ate_m", "ate"), ("rpe_trans_m", "rpe_trans"), ("rpe_rot_deg", "rpe_rot")):
            rep.close(f"camera {m}", getattr(res, m), s[key], tol[key]["rel"], tol[key]["abs"])
        report = pack / f"camera/{tag}_eval_metric.txt"
        if report.exists():
            rep.note("camera evo report text", res.report == report.read_text(), f"{tag}: byte-identical report",
                     "exact")
    ev = summarize_trajectories("tum", results)
    for m, key in (("ate_m", "ate"), ("rpe_trans_m", "rpe_trans"), ("rpe_rot_deg", "rpe_rot")):
        rep.close("camera average of sequences", ev.value(m), meta["average"][key],
                  abs_=tol["average_of_sequences"]["abs"])


def _depth_close(rep: Report, mine: dict, ref: dict, tol: dict, where: str) -> None:
    keys = {"abs_rel": "abs_rel", "sq_rel": "sq_rel", "rmse": "rmse", "log_rmse": "log_rmse",
            "delta_1_25": "d1", "delta_1_25_2": "d2", "delta_1_25_3": "d3"}
    for m, t in keys.items():
        tt = tol[t]
        rep.close(f"depth {where} {m}", mine[m], ref[METRICS[m].ref_key], tt.get("rel", 0.0), tt.get("abs", 0.0))
    rep.close(f"depth {where} delta_1", mine["delta_1"], ref[METRICS["delta_1"].ref_key])
    if "valid_pixels" in ref:
        rep.equal("depth valid pixels", mine["valid_pixels"], ref["valid_pixels"])


def check_depth(pack: Path, tol: dict, rep: Report) -> None:
    from tasks.evaluation.metrics.depth import average_depth, depth_metrics, resize_bicubic

    z = np.load(pack / "depth/depth.npz")
    meta = json.loads((pack / "depth/depth.json").read_text())
    max_depth = meta.get("max_depth", 70)
    per_mode: dict[str, list[dict]] = {"scale": [], "metric": []}
    for i, seq in enumerate(_seqs(z, "__gt")):
        gt = z[f"{seq}__gt"].astype(np.float64)
        resized = np.stack([resize_bicubic(f, *gt.shape[1:]) for f in z[f"{seq}__pred_lowres"]])
        rep.close("depth bicubic resize (m)", resized, z[f"{seq}__pred_resized"], abs_=1e-6)
        for mode in per_mode:
            mine = depth_metrics(z[f"{seq}__pred_resized"], gt, mode, max_depth)
            per_mode[mode].append(mine)
            _depth_close(rep, mine, meta["sequences"][i][mode], tol[mode]["torch_f32"], mode)
    for mode, seqs in per_mode.items():
        _depth_close(rep, average_depth(seqs), meta["average"][mode], tol[mode]["torch_f32"], f"{mode} average")
    bonn = pack / "depth/bonn"
    if bonn.is_dir():
        from tasks.evaluation.metrics.bonn import evaluate_bonn

        for mode in per_mode:
            result = bonn / f"result_{mode}.json"
            if result.exists():
                ev = evaluate_bonn(bonn / "long_bonn", bonn / "pred", mode)
                _depth_close(rep, ev.averages(), json.loads(result.read_text()), tol[mode]["torch_f32"],
                             f"bonn {mode}")


def run(pack: str | Path, out=None) -> bool:
    """Every check of `pack`; prints the table and returns True when everything passes."""
    from tasks.evaluation.parity_edges import check_edges

    pack = Path(pack)
    tol = json.loads((pack / "tolerances.json").read_text())
    rep = Report()
    check_camcoord(pack, tol["human"], rep)
    check_global(pack, tol["human"], rep)
    check_aggregate(pack, tol["human"], rep)
    check_matching(pack, rep)
    check_camera(pack, tol["camera"], rep)
    check_depth(pack, tol["depth"], rep)
    edges = pack / "edges.json"
    if edges.exists():
        check_edges(json.loads(edges.read_text()), rep)
    return rep.print(out)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pack_dir")
    args = parser.parse_args(argv)
    return 0 if run(args.pack_dir) else 1


if __name__ == "__main__":
    sys.exit(main())
