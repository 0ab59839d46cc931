"""Pseudo-labelled datasets from the archive: select tracks by SQL, cut clips, split by video, export.

`build_labels(root, out, where, options)` is what `human3r labels build` and the `build-labels` flow run:

1. score the videos whose live run has no `track_quality` rows yet (`tasks.labels.quality`; ``score=False`` skips it);
2. select tracks: ``SELECT * FROM track_quality WHERE <where>`` through the read-only catalog;
3. cut each track into clips (`cut_clips`: split wherever it is missing from a processed frame, drop pieces under
   ``min_frames``, cut long pieces into near-equal clips of at most ``max_frames``);
4. assign each video to train / val / test by a hash of (seed, video_id) (`split_of`): deterministic, stable as the
   dataset grows, never a video in two splits;
5. export, a batch of videos at a time (bounded memory): per clip an AMASS-style npz (`tasks.labels.amass`), per frame
   the label rows (`tasks.labels.rows`) appended to ``labels/<split>.parquet``, optionally JPEGs cut from the sources
   (`tasks.labels.images`); then ``clips.parquet``, ``videos.parquet``, ``build.json`` and the card ``README.md``
   (`tasks.labels.card`).

The build is written into a temporary folder next to ``out`` and renamed into place at the end, so ``out`` is
either the previous build or the new one, never half of one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from storage import schema as S
from storage.arrays import as_joints, as_vectors
from storage.catalog import open_catalog
from storage.fs import Root, open_root
from tasks.errors import UsageError
from tasks.labels.card import CLIP_METRICS, render_card, summarize_build
from tasks.labels.ground import GroundPlane, zup_transform
from tasks.labels.options import ClipOptions, LabelOptions, SplitOptions
from tasks.labels.quality import score_videos, split_by_video

MAX_BATCH_HUMAN_ROWS = 100_000  # humans rows (with joints) read at once
_FRAME_COLUMNS = (S.VIDEO_ID, S.FRAME_IDX, S.CAM_TO_WORLD, S.FX_SRC_PX, S.FY_SRC_PX, S.CX_SRC_PX, S.CY_SRC_PX)
_RUN_COLUMNS = (S.VIDEO_ID, S.RUN_ID, S.SOURCE_URI, S.CONTENT_SHA256, S.SIZE_BYTES, S.FPS, S.WIDTH_PX, S.HEIGHT_PX,
                S.MODEL_VERSION, S.CHECKPOINT_SHA256, S.PRESET, S.SCHEMA_VERSION_COL, S.N_HUMAN_ROWS)
_HUMANS_SQL = f"SELECT * FROM humans WHERE {{where}} ORDER BY {S.VIDEO_ID}, {S.TRACK_ID}, {S.FRAME_IDX}"
_FRAMES_SQL = f"SELECT {', '.join(_FRAME_COLUMNS)} FROM frames WHERE {{where}} ORDER BY {S.VIDEO_ID}, {S.FRAME_IDX}"


# ------------------------------------------------------------------------------------------------------------------
# Pure parts: splits and clips
# ------------------------------------------------------------------------------------------------------------------


def split_of(video_id: str, options: SplitOptions) -> str:
    """train, val or test for a video: sha256(seed:video_id) as a number in [0, 1) against the split shares."""
    u = int(hashlib.sha256(f"{options.seed}:{video_id}".encode()).hexdigest()[:15], 16) / 16**15
    return "train" if u < options.train else "val" if u < options.train + options.val else "test"


def cut_clips(position: np.ndarray, options: ClipOptions) -> tuple[list[tuple[int, int]], list[int]]:
    """A track's rows (their positions among the run's processed frames, increasing) -> clips as row ranges
    [start, stop), and the lengths of the pieces left out for being shorter than ``min_frames``."""
    breaks = np.flatnonzero(np.diff(position) != 1) + 1
    clips, short = [], []
    for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(position)]):
        length = int(stop - start)
        if length < options.min_frames:
            short.append(length)
            continue
        parts = -(-length // options.max_frames)
        edges = start + (np.arange(parts + 1) * length) // parts
        clips += [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
    return clips, short


def clip_id_for(video_id: str, track_id: int, first_frame_idx: int) -> str:
    return f"{video_id}-t{track_id}-f{first_frame_idx}"


def _plane(row: dict) -> GroundPlane | None:
    normal = row.get(S.GROUND_NORMAL_WORLD)
    if normal is None or row.get(S.GROUND_OFFSET_M) is None:
        return None
    return GroundPlane(np.asarray(normal, np.float64), float(row[S.GROUND_OFFSET_M]),
                       float(row.get(S.GROUND_INLIER_FRAC) or 0.0))


# ------------------------------------------------------------------------------------------------------------------
# The build
# ------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class BuildReport:
    out: str
    info: dict  # what build.json holds (counts, splits, provenance)
    seconds: float

    @property
    def line(self) -> str:
        c = self.info["counts"]
        per_split = ", ".join(f"{n} {s['clips']}" for n, s in self.info["splits"].items())
        return (f"{c['clips']} clips ({c['frames']} frames) from {c['tracks']} tracks of {c['videos']} videos "
                f"[{per_split}] -> {self.out} in {self.seconds:.1f} s")


def _check_out(out: str, overwrite: bool) -> Path:
    if "://" in out:
        raise UsageError(f"--out must be a local folder (got {out!r}); copy the build to object storage afterwards")
    path = Path(out)
    if path.exists() and not overwrite and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(f"{out} exists and is not empty; pass --overwrite to replace it, or choose another --out")
    return path


def select_tracks(catalog, where: str) -> pa.Table:
    """The track_quality rows chosen by `where` (read-only SQL over the catalog's views), sorted by video, track."""
    return catalog.query(f"SELECT * FROM {S.TRACK_QUALITY.name} WHERE ({where}) ORDER BY {S.VIDEO_ID}, {S.TRACK_ID}")


class _Writers:
    """One Parquet writer per split (labels/<split>.parquet), opened at its first rows: a split without rows has
    no file (`datasets` refuses a split that corresponds to no data)."""

    def __init__(self, folder: Path):
        self.folder = folder / "labels"
        self.files: dict[str, pq.ParquetWriter] = {}

    def write(self, split: str, table: pa.Table) -> None:
        if split not in self.files:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.files[split] = pq.ParquetWriter(self.folder / f"{split}.parquet", table.schema, compression="zstd")
        self.files[split].write_table(table)

    def close(self) -> None:
        for w in self.files.values():
            w.close()


def build_labels(root: Root | str, out: str | os.PathLike, where: str = "true", options: LabelOptions = LabelOptions(),
                 *, score: bool = True, overwrite: bool = False,
                 progress: Callable[[str, int, int], None] | None = None) -> BuildReport:
    """Build a pseudo-labelled dataset at `out` from the tracks of `root` chosen by `where` (see the module doc).
    `progress(stage, done, total)` reports scoring and export progress."""
    started = time.perf_counter()
    out_path = _check_out(os.fspath(out), overwrite)
    dataset = root if isinstance(root, Root) else open_root(root)
    with open_catalog(dataset) as cat:  # a bad --where fails here, before any scoring
        cat.query(f"SELECT * FROM {S.TRACK_QUALITY.name} WHERE ({where}) LIMIT 0")
    if score:
        score_videos(dataset, progress=None if progress is None else lambda d, t: progress("scoring", d, t))
    tmp = out_path.parent / f".{out_path.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        info = _export(dataset, tmp, where, options, progress)
        (tmp / "build.json").write_text(json.dumps(info, indent=1, default=str) + "\n")
        (tmp / "README.md").write_text(render_card(info))
        if out_path.exists():
            shutil.rmtree(out_path) if out_path.is_dir() else out_path.unlink()
        tmp.rename(out_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildReport(str(out_path), info, time.perf_counter() - started)


def _export(dataset: Root, folder: Path, where: str, options: LabelOptions, progress) -> dict:
    with open_catalog(dataset) as cat:
        tracks = select_tracks(cat, where)
        ids = sorted(set(tracks.column(S.VIDEO_ID).to_pylist()))
        marks = ", ".join("?" * len(ids))
        runs = cat.query(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE {S.VIDEO_ID} IN ({marks}) "
                         f"ORDER BY {S.VIDEO_ID}", ids) if ids else S.RUNS.arrow_schema.empty_table()
        facts = {r[S.VIDEO_ID]: {**r, "split": split_of(r[S.VIDEO_ID], options.split)}
                 for r in runs.select(list(_RUN_COLUMNS)).to_pylist()}
        chosen: dict[str, dict[int, dict]] = {}
        for row in tracks.to_pylist():
            chosen.setdefault(row[S.VIDEO_ID], {})[row[S.TRACK_ID]] = row
        writers = _Writers(folder)
        state = {"clips": [], "too_short": [], "images": 0, "image_errors": {}}
        try:
            done = 0
            for batch in _batches(ids, facts):
                where_ids = f"{S.VIDEO_ID} IN ({', '.join('?' * len(batch))})"
                humans = split_by_video(cat.query(_HUMANS_SQL.format(where=where_ids), batch), batch)
                frames = split_by_video(cat.query(_FRAMES_SQL.format(where=where_ids), batch), batch)
                for vid in batch:
                    _export_video(vid, humans[vid], frames[vid], facts[vid], chosen[vid], folder, options, writers,
                                  state)
                done += len(batch)
                if progress is not None:
                    progress("exporting", done, len(ids))
        finally:
            writers.close()
    return summarize_build(dataset.uri, where, options, tracks.num_rows, facts, state, folder)


def _batches(ids: list[str], facts: dict) -> list[list[str]]:
    out, batch, rows = [], [], 0
    for vid in ids:
        n = facts[vid][S.N_HUMAN_ROWS]
        if batch and rows + n > MAX_BATCH_HUMAN_ROWS:
            out.append(batch)
            batch, rows = [], 0
        batch.append(vid)
        rows += n
    return out + ([batch] if batch else [])


def _export_video(vid: str, humans: pa.Table, frames: pa.Table, fact: dict, tracks: dict[int, dict], folder: Path,
                  options: LabelOptions, writers: _Writers, state: dict) -> None:
    """Clips, npz files, label rows and images of one video's selected tracks."""
    from tasks.labels.amass import write_amass
    from tasks.labels.images import Cut, crop_box, cut_images
    from tasks.labels.rows import ClipFrames, clip_label_rows, to_table

    split = fact["split"]
    frame_idx = frames.column(S.FRAME_IDX).to_numpy()
    c2w_all = as_vectors(frames.column(S.CAM_TO_WORLD), 16).reshape(-1, 4, 4)
    k_all = np.zeros((len(frame_idx), 3, 3))
    k_all[:, 0, 0], k_all[:, 1, 1] = frames.column(S.FX_SRC_PX).to_numpy(), frames.column(S.FY_SRC_PX).to_numpy()
    k_all[:, 0, 2], k_all[:, 1, 2] = frames.column(S.CX_SRC_PX).to_numpy(), frames.column(S.CY_SRC_PX).to_numpy()
    k_all[:, 2, 2] = 1
    track_col = humans.column(S.TRACK_ID).to_numpy()
    parts, cuts = [], []
    for track_id, quality in sorted(tracks.items()):
        rows_of = np.flatnonzero(track_col == track_id)
        if not len(rows_of):
            continue
        track = humans.take(pa.array(rows_of))
        position = np.searchsorted(frame_idx, track.column(S.FRAME_IDX).to_numpy())
        plane = _plane(quality)
        to_zup = zup_transform(plane)
        clips, short = cut_clips(position, options.clips)
        state["too_short"] += short
        for a, b in clips:
            rows = track.slice(a, b - a)
            pos = position[a:b]
            first = int(rows.column(S.FRAME_IDX)[0].as_py())
            cid = clip_id_for(vid, int(track_id), first)
            t = rows.column(S.TIMESTAMP_S).to_numpy()
            rate = 1 / float(np.median(np.diff(t))) if len(t) > 1 else float(fact[S.FPS] or 0)
            cols = clip_label_rows(rows, ClipFrames(c2w_all[pos], k_all[pos], fact[S.WIDTH_PX], fact[S.HEIGHT_PX]),
                                   to_zup=to_zup, plane=plane, flags=options.flags,
                                   ids={"clip_id": cid, "split": split, "source_uri": fact[S.SOURCE_URI]})
            npz = None
            if bool(np.all(cols["valid_body"])):  # every frame has joints: the npz can be exact
                npz = f"amass/{split}/{cid}.npz"
                write_amass(folder / npz, _amass_of(rows, rate, to_zup))
            valid = np.asarray(cols["valid"], bool)
            state["clips"].append({
                "clip_id": cid, "video_id": vid, "run_id": fact[S.RUN_ID], "track_id": int(track_id), "split": split,
                "first_frame_idx": first, "last_frame_idx": int(rows.column(S.FRAME_IDX)[-1].as_py()),
                "n_frames": b - a, "duration_s": float(t[-1] - t[0]), "frame_rate": rate, "amass_path": npz,
                "valid_frac": float(valid.mean()), "ground_from_points": plane is not None,
                **{m: quality[m] for m in CLIP_METRICS},
                "flags": {k: _counts(v) for k, v in cols.items() if k.startswith("valid_")},
            })
            n = len(t)
            paths, crops = [None] * n, [None] * n
            if options.images != "none":
                for i, f in enumerate(rows.column(S.FRAME_IDX).to_pylist()):
                    if options.images == "frames":
                        paths[i] = f"images/{vid}/{f:06d}.jpg"
                        cuts.append(Cut(f, paths[i]))
                    else:
                        box = crop_box(cols["bbox_xyxy_src_px"][i], options.crop_margin, fact[S.WIDTH_PX],
                                       fact[S.HEIGHT_PX])
                        if box is not None:
                            paths[i], crops[i] = f"images/{vid}/{f:06d}-t{track_id}.jpg", list(box)
                            cuts.append(Cut(f, paths[i], box))
            parts.append((split, cols, paths, crops))
    if cuts:
        unique = list({c.path: c for c in cuts}.values())
        written, error = cut_images(fact[S.SOURCE_URI], fact[S.SIZE_BYTES], unique, folder, options.jpeg_quality)
        state["images"] += written
        if error:
            state["image_errors"][vid] = error
    for split_name, cols, paths, crops in parts:
        if cuts:
            paths = [p if p is not None and (folder / p).exists() else None for p in paths]
            crops = [c if p is not None else None for p, c in zip(paths, crops)]
        writers.write(split_name, to_table(cols, paths, crops))


def _amass_of(rows: pa.Table, rate: float, to_zup: np.ndarray) -> dict[str, np.ndarray]:
    """The npz arrays of a clip's stored rows (every row with joints)."""
    from tasks.labels.amass import amass_sequence

    vec = {c: as_vectors(rows.column(c), k) for c, k in (
        (S.GLOBAL_ORIENT_WORLD, 3), (S.BODY_POSE, 63), (S.LEFT_HAND_POSE, 45), (S.RIGHT_HAND_POSE, 45),
        (S.JAW_POSE, 3), (S.BETAS, 10), (S.EXPRESSION, 10), (S.TRANSL_WORLD_M, 3))}
    return amass_sequence(
        global_orient_world=vec[S.GLOBAL_ORIENT_WORLD], body_pose=vec[S.BODY_POSE],
        left_hand_pose=vec[S.LEFT_HAND_POSE], right_hand_pose=vec[S.RIGHT_HAND_POSE], jaw_pose=vec[S.JAW_POSE],
        betas=vec[S.BETAS], expression=vec[S.EXPRESSION], pelvis_world=as_joints(rows.column(S.JOINTS_WORLD_M))[:, 0],
        transl_world=vec[S.TRANSL_WORLD_M], frame_rate=rate, to_zup=to_zup)


def _counts(values) -> tuple[int, int]:
    """(true, known) of a flag column (None = unknown)."""
    known = [v for v in (values.tolist() if isinstance(values, np.ndarray) else values) if v is not None]
    return int(sum(known)), len(known)
