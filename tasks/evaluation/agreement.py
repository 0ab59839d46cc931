"""How far two models' outputs differ on the same videos, without ground truth (`human3r eval compare`).

Two sides, each the runs of one dataset root (its live runs, or the latest runs of one model version, when their
rows are still stored): the videos both hold (same content, so the same ``video_id``) are compared frame by frame on
the frames both processed:

* **camera path**: ATE (m) of side B's camera centres against side A's after a Sim(3) alignment (evo's APE on the
  translation part, Umeyama with scale, as the camera benchmarks), and as a percentage of A's path length;
* **people**: the tracks of A and B matched one to one (Hungarian assignment on the mean camera-frame distance of
  their heads over the frames both see; pairs further apart than :data:`MATCH_M` stay unmatched), then the mean
  distance of their joints (mm) in each side's own camera frame (the stored SMPL-X joints when both sides have
  them, else the head), and the share of frames where both see as many people;
* **scene depth**: each side's stored scene points in its own camera (depth z, pixel from its working-resolution
  intrinsics), the median depth per :data:`CELL_PX`-pixel cell, then AbsRel = mean |z_B - z_A| / z_A and the
  share of cells with max(z_A/z_B, z_B/z_A) < 1.25 over the cells both have (the points are subsampled per frame,
  so pixels rarely coincide; cells do).

A is the reference of every difference. Nothing here needs the network, a body model or ground truth.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from storage import schema as S
from storage.fs import Root
from tasks.errors import UsageError

MATCH_M = 0.5  # tracks whose heads are further apart than this on average (camera frame, metres) are not a pair
CELL_PX = 16  # working-resolution pixels per side of a depth cell


class CompareError(UsageError):
    """The two sides cannot be compared (no dataset, no common video, a model version without stored rows)."""


@dataclasses.dataclass(frozen=True)
class Side:
    root: Root
    model_version: str | None = None  # None: the live runs; else the latest run of this version per video

    def label(self, runs: dict[str, dict]) -> str:
        versions = sorted({_describe(r) for r in runs.values()})
        where = self.root.uri
        return f"{', '.join(versions) or 'no runs'} @ {where}"


def _describe(run: dict) -> str:
    params = json.loads(run.get(S.PARAMS_JSON) or "{}")
    return f"{run[S.MODEL_VERSION]} ({params.get('precision', 'float32')})"


@dataclasses.dataclass(frozen=True)
class VideoAgreement:
    """One video's differences, B against A. NaN where a measure has nothing to compare."""

    video_id: str
    source_uri: str
    frames: int  # frames both sides processed
    ate_m: float  # camera centres, RMSE after Sim(3)
    ate_pct: float  # ate_m / A's camera path length, percent
    tracks_a: int
    tracks_b: int
    tracks_matched: int
    joint_mm: float  # mean joint distance of matched people, camera frames, mm
    head_mm: float  # mean head distance of matched people, camera frames, mm
    same_count_pct: float  # frames where both see as many people, percent
    depth_abs_rel: float
    depth_delta_1_25: float  # fraction of cells
    depth_cells: int
    note: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------------------------------------
# Reading a side
# ------------------------------------------------------------------------------------------------------------------


def _runs(cat, side: Side) -> dict[str, dict]:
    """{video_id: the run compared} of a side."""
    if side.model_version is None:
        rows = cat.query("SELECT * FROM runs").to_pylist()
    else:
        rows = cat.query(f"SELECT * EXCLUDE (_r) FROM (SELECT *, row_number() OVER (PARTITION BY {S.VIDEO_ID} ORDER "
                         f"BY {S.FINISHED_AT} DESC, {S.RUN_ID} DESC) AS _r FROM runs_all WHERE {S.MODEL_VERSION} = ?) "
                         "WHERE _r = 1", [side.model_version]).to_pylist()
    return {r[S.VIDEO_ID]: r for r in rows}


def _rows(cat, table: str, run_id: str, columns: list[str]) -> list[dict]:
    return cat.query(f"SELECT {', '.join(columns)} FROM {table}_all WHERE {S.RUN_ID} = ? ORDER BY {S.FRAME_IDX}",
                     [run_id]).to_pylist()


@dataclasses.dataclass
class _Video:
    c2w: dict[int, np.ndarray]  # frame_idx -> (4, 4)
    K: dict[int, tuple]  # frame_idx -> (fx, fy, cx, cy, W, H) working resolution
    people: dict[int, list[tuple[int, np.ndarray, np.ndarray | None]]]  # frame -> [(track, head_w, joints_w)]
    points: dict[int, np.ndarray]  # frame_idx -> (N, 3) world points


def _video(cat, run_id: str) -> _Video:
    frames = _rows(cat, "frames", run_id, [S.FRAME_IDX, S.CAM_TO_WORLD, S.FX_WORK_PX, S.FY_WORK_PX, S.CX_WORK_PX,
                                           S.CY_WORK_PX, S.WORK_WIDTH_PX, S.WORK_HEIGHT_PX])
    people: dict[int, list] = {}
    for h in _rows(cat, "humans", run_id, [S.FRAME_IDX, S.TRACK_ID, S.HEAD_WORLD_M, S.JOINTS_WORLD_M]):
        joints = None if h[S.JOINTS_WORLD_M] is None else np.asarray(h[S.JOINTS_WORLD_M], np.float64)
        people.setdefault(h[S.FRAME_IDX], []).append((h[S.TRACK_ID], np.asarray(h[S.HEAD_WORLD_M], np.float64),
                                                      joints))
    pts = cat.query(f"SELECT {S.FRAME_IDX}, {S.X_M}, {S.Y_M}, {S.Z_M} FROM points_all WHERE {S.RUN_ID} = ?",
                    [run_id])
    points: dict[int, np.ndarray] = {}
    if pts.num_rows:
        idx = pts.column(S.FRAME_IDX).to_numpy()
        xyz = np.stack([pts.column(c).to_numpy().astype(np.float64) for c in (S.X_M, S.Y_M, S.Z_M)], axis=1)
        for f in np.unique(idx):
            points[int(f)] = xyz[idx == f]
    return _Video({f[S.FRAME_IDX]: np.asarray(f[S.CAM_TO_WORLD], np.float64).reshape(4, 4) for f in frames},
                  {f[S.FRAME_IDX]: (f[S.FX_WORK_PX], f[S.FY_WORK_PX], f[S.CX_WORK_PX], f[S.CY_WORK_PX],
                                    f[S.WORK_WIDTH_PX], f[S.WORK_HEIGHT_PX]) for f in frames}, people, points)


# ------------------------------------------------------------------------------------------------------------------
# The measures
# ------------------------------------------------------------------------------------------------------------------


def camera_ate(c2w_a: np.ndarray, c2w_b: np.ndarray) -> tuple[float, float]:
    """(ATE m, ATE % of A's path) of B's camera centres against A's, after Sim(3) (evo APE, translation part).
    c2w_*: (F, 4, 4) of the same frames. NaN when fewer than 3 frames or the alignment is undefined."""
    from evo import main_ape
    from evo.core.geometry import GeometryException
    from evo.core.metrics import PoseRelation
    from evo.core.trajectory import PoseTrajectory3D

    from tasks.evaluation.metrics.camera import c2w_to_tum_wxyz

    if len(c2w_a) < 3:
        return math.nan, math.nan
    stamps = np.arange(len(c2w_a), dtype=np.float64)
    a, b = c2w_to_tum_wxyz(c2w_a), c2w_to_tum_wxyz(c2w_b)
    ref = PoseTrajectory3D(positions_xyz=a[:, :3], orientations_quat_wxyz=a[:, 3:], timestamps=stamps)
    est = PoseTrajectory3D(positions_xyz=b[:, :3], orientations_quat_wxyz=b[:, 3:], timestamps=stamps.copy())
    try:
        result = main_ape.ape(ref, est, pose_relation=PoseRelation.translation_part, align=True, correct_scale=True)
    except (GeometryException, np.linalg.LinAlgError):
        return math.nan, math.nan
    ate = float(result.stats["rmse"])
    length = float(np.linalg.norm(np.diff(a[:, :3], axis=0), axis=1).sum())
    return ate, 100.0 * ate / length if length > 0 else math.nan


def _to_cam(c2w: np.ndarray, points: np.ndarray) -> np.ndarray:
    R, t = c2w[:3, :3], c2w[:3, 3]
    return (np.asarray(points, np.float64) - t) @ R  # R^T (p - t)


def match_tracks(a: _Video, b: _Video, frames: list[int]) -> dict[int, int]:
    """{track of A: track of B}: one-to-one, minimising the mean camera-frame head distance over shared frames."""
    from scipy.optimize import linear_sum_assignment

    sums: dict[tuple[int, int], list[float]] = {}
    for f in frames:
        for ta, ha, _ in a.people.get(f, []):
            for tb, hb, _ in b.people.get(f, []):
                d = float(np.linalg.norm(_to_cam(a.c2w[f], ha) - _to_cam(b.c2w[f], hb)))
                sums.setdefault((ta, tb), []).append(d)
    if not sums:
        return {}
    tracks_a = sorted({k[0] for k in sums})
    tracks_b = sorted({k[1] for k in sums})
    cost = np.full((len(tracks_a), len(tracks_b)), 1e6)
    for (ta, tb), ds in sums.items():
        cost[tracks_a.index(ta), tracks_b.index(tb)] = float(np.mean(ds))
    rows, cols = linear_sum_assignment(cost)
    return {tracks_a[r]: tracks_b[c] for r, c in zip(rows, cols, strict=True) if cost[r, c] <= MATCH_M}


def people_agreement(a: _Video, b: _Video, frames: list[int]) -> tuple[dict[int, int], float, float, float]:
    """(track pairs, mean joint distance mm, mean head distance mm, % frames with as many people)."""
    pairs = match_tracks(a, b, frames)
    joint_d, head_d = [], []
    for f in frames:
        by_b = {t: (h, j) for t, h, j in b.people.get(f, [])}
        for ta, ha, ja in a.people.get(f, []):
            if ta not in pairs or pairs[ta] not in by_b:
                continue
            hb, jb = by_b[pairs[ta]]
            head_d.append(float(np.linalg.norm(_to_cam(a.c2w[f], ha) - _to_cam(b.c2w[f], hb))))
            if ja is not None and jb is not None and ja.shape == jb.shape:
                joint_d.append(float(np.mean(np.linalg.norm(_to_cam(a.c2w[f], ja) - _to_cam(b.c2w[f], jb), axis=1))))
    same = [len(a.people.get(f, [])) == len(b.people.get(f, [])) for f in frames]
    mm = lambda xs: 1000.0 * float(np.mean(xs)) if xs else math.nan  # noqa: E731
    same_pct = 100.0 * float(np.mean(same)) if same else math.nan
    return pairs, mm(joint_d) if joint_d else mm(head_d), mm(head_d), same_pct


def _cell_depths(c2w: np.ndarray, K: tuple, world: np.ndarray, cell: int) -> dict[tuple[int, int], float]:
    fx, fy, cx, cy, w, h = K
    cam = _to_cam(c2w, world)
    z = cam[:, 2]
    ok = z > 1e-6
    cam, z = cam[ok], z[ok]
    u, v = fx * cam[:, 0] / z + cx, fy * cam[:, 1] / z + cy
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    keys = np.stack([(u[inside] // cell).astype(np.int64), (v[inside] // cell).astype(np.int64)], axis=1)
    zs = z[inside]
    out = {}
    if len(zs):
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        for i, k in enumerate(uniq):
            out[(int(k[0]), int(k[1]))] = float(np.median(zs[inverse.reshape(-1) == i]))
    return out


def depth_agreement(a: _Video, b: _Video, frames: list[int], cell: int = CELL_PX) -> tuple[float, float, int]:
    """(AbsRel, fraction of cells within 1.25x, cells) of B's per-cell median depth against A's."""
    za, zb = [], []
    for f in frames:
        if f not in a.points or f not in b.points:
            continue
        da = _cell_depths(a.c2w[f], a.K[f], a.points[f], cell)
        db = _cell_depths(b.c2w[f], b.K[f], b.points[f], cell)
        for k in da.keys() & db.keys():
            za.append(da[k])
            zb.append(db[k])
    if not za:
        return math.nan, math.nan, 0
    za, zb = np.asarray(za), np.asarray(zb)
    return float(np.mean(np.abs(zb - za) / za)), float(np.mean(np.maximum(za / zb, zb / za) < 1.25)), len(za)


# ------------------------------------------------------------------------------------------------------------------
# Two sides
# ------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Comparison:
    label_a: str
    label_b: str
    videos: tuple[VideoAgreement, ...]
    only_a: int  # videos only side A holds
    only_b: int

    def overall(self) -> dict[str, float]:
        """Frame-weighted means of each measure over the videos (NaNs left out)."""
        out = {}
        for field in ("ate_m", "ate_pct", "joint_mm", "head_mm", "same_count_pct", "depth_abs_rel",
                      "depth_delta_1_25"):
            vals = [(getattr(v, field), v.frames) for v in self.videos if math.isfinite(getattr(v, field))]
            w = sum(n for _, n in vals)
            out[field] = sum(x * n for x, n in vals) / w if w else math.nan
        return out


def compare(a: Side, b: Side) -> Comparison:
    """Every video both sides hold, compared (see the module docstring)."""
    from storage.catalog import open_catalog

    with open_catalog(a.root) as cat_a, (open_catalog(b.root) if b.root.uri != a.root.uri
                                         else _Same(cat_a)) as cat_b:
        runs_a, runs_b = _runs(cat_a, a), _runs(cat_b, b)
        for side, runs in ((a, runs_a), (b, runs_b)):
            if side.model_version is not None and not runs:
                raise CompareError(f"no run of model version {side.model_version} in {side.root.uri}")
        common = sorted(runs_a.keys() & runs_b.keys())
        if not common:
            raise CompareError(f"the two sides hold no video in common ({len(runs_a)} and {len(runs_b)} videos): "
                               "reconstruct the same footage into both roots")
        out = []
        for vid in common:
            ra, rb = runs_a[vid], runs_b[vid]
            note = ""
            if ra[S.RUN_ID] == rb[S.RUN_ID]:
                note = "the same run on both sides"
            va, vb = _video(cat_a, ra[S.RUN_ID]), _video(cat_b, rb[S.RUN_ID])
            frames = sorted(va.c2w.keys() & vb.c2w.keys())
            if not frames:
                missing = [r[S.RUN_ID] for r, v in ((ra, va), (rb, vb)) if not v.c2w]
                note = (f"rows of run(s) {', '.join(missing)} are no longer stored (a later run replaced them): "
                        "write each model to its own root" if missing else "no frame in common")
            ate, ate_pct = camera_ate(np.stack([va.c2w[f] for f in frames]), np.stack([vb.c2w[f] for f in frames])) \
                if frames else (math.nan, math.nan)
            pairs, joint_mm, head_mm, same = people_agreement(va, vb, frames)
            abs_rel, delta, cells = depth_agreement(va, vb, frames)
            tracks = lambda v: len({t for ps in v.people.values() for t, _, _ in ps})  # noqa: E731
            out.append(VideoAgreement(vid, ra[S.SOURCE_URI], len(frames), ate, ate_pct, tracks(va), tracks(vb),
                                      len(pairs), joint_mm, head_mm, same, abs_rel, delta, cells, note))
        return Comparison(a.label(runs_a), b.label(runs_b), tuple(out), len(runs_a.keys() - runs_b.keys()),
                          len(runs_b.keys() - runs_a.keys()))


class _Same:
    """The catalog of side A again (one root, two model versions), as a context manager that closes nothing."""

    def __init__(self, cat):
        self.cat = cat

    def __enter__(self):
        return self.cat

    def __exit__(self, *exc) -> None:
        pass


def to_markdown(c: Comparison) -> str:
    """The comparison as Markdown: sides, one row per video, the frame-weighted overall row."""
    def f(x: float, digits: int) -> str:
        return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"

    head = ("| video | frames | ATE (m) | ATE (% of path) | tracks A/B/matched | joints (mm) | heads (mm) | "
            "same people count (%) | depth AbsRel | depth δ<1.25 | cells |")
    lines = ["# Model agreement (no ground truth)", "", f"- A (reference): {c.label_a}", f"- B: {c.label_b}",
             f"- videos compared: {len(c.videos)} (only in A: {c.only_a}, only in B: {c.only_b})", "", head,
             "|---|" + "---:|" * 10]
    for v in c.videos:
        lines.append(f"| `{v.video_id}` | {v.frames} | {f(v.ate_m, 4)} | {f(v.ate_pct, 2)} | "
                     f"{v.tracks_a}/{v.tracks_b}/{v.tracks_matched} | {f(v.joint_mm, 1)} | {f(v.head_mm, 1)} | "
                     f"{f(v.same_count_pct, 1)} | {f(v.depth_abs_rel, 4)} | {f(v.depth_delta_1_25, 3)} | "
                     f"{v.depth_cells} |")
    o = c.overall()
    lines.append(f"| **all (frame-weighted)** | {sum(v.frames for v in c.videos)} | {f(o['ate_m'], 4)} | "
                 f"{f(o['ate_pct'], 2)} | | {f(o['joint_mm'], 1)} | {f(o['head_mm'], 1)} | "
                 f"{f(o['same_count_pct'], 1)} | {f(o['depth_abs_rel'], 4)} | {f(o['depth_delta_1_25'], 3)} | |")
    notes = [f"- `{v.video_id}`: {v.note}" for v in c.videos if v.note]
    lines += ["", *notes, "" if notes else "", f"Camera: evo APE (translation) after Sim(3); people: tracks matched "
              f"by mean head distance (≤ {MATCH_M} m), distances in each side's camera frame; depth: per "
              f"{CELL_PX}-pixel cell median of the stored scene points.", ""]
    return "\n".join(lines)
