"""The dataset card (``README.md``) of a pseudo-label build: what was selected, from what, and under which terms.

`summarize_build` writes the index files (``clips.parquet``, ``videos.parquet``) and gathers the build's facts (what
``build.json`` holds); `render_card` turns them into Markdown with a Hugging Face front matter (so
`load_dataset(<build folder>)` finds the splits): provenance (model versions and checkpoint hashes, schema version,
run ids and source hashes), the selection SQL and options, counts and per-split statistics, the file layout and
conventions, and licence notes.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from storage import schema as S
from tasks.labels.options import SPLITS, LabelOptions
from tasks.labels.rows import LABELS_SCHEMA

# the track_quality metrics copied into clips.parquet (and averaged per split in the card)
CLIP_METRICS = (S.DETECTION_SCORE_MEAN, S.JITTER_MPS3, S.MAX_JUMP_M, S.FOOT_SLIDING_MPS, S.GROUND_PENETRATION_M,
                S.BETAS_ABS_MAX, S.POINT_CONF_MEAN)

LICENCE_NOTES = """\
- **Human3R** (the network that made these labels) is released under **CC BY-NC-SA 4.0**: non-commercial use, with
  attribution, and derivatives under the same licence. Treat these pseudo-labels as a derivative of it.
- **SMPL-X**: the parameters are SMPL-X parameters; the SMPL-X model (needed to turn them into meshes or joints) is
  licensed separately for non-commercial research by the Max Planck Institute for Intelligent Systems (register at
  https://smpl-x.is.tue.mpg.de). No body-model file is included here.
- **Source videos** keep their own licences and consent terms; any images cut from them inherit those terms.
"""


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def render_card(info: dict) -> str:
    """The card's Markdown. `info` is the build's summary (`tasks.labels.build.build_labels` writes it to build.json
    too): root, where, options, created_at, splits {name: stats}, counts, models, videos (provenance rows), images."""
    splits = info["splits"]
    front = ["---", "license: other", "license_name: cc-by-nc-sa-4.0-human3r-and-smpl-x-model-licence",
             "tags: [smpl-x, human-motion, pseudo-labels, human3r]"]
    if info["label_files"]:  # the splits `load_dataset(<this folder>)` finds (a split without rows has no file)
        front += ["configs:", "- config_name: default", "  data_files:"]
        front += [f"  - split: {name}\n    path: {path}" for name, path in info["label_files"].items()]
    front += ["---", ""]
    counts = info["counts"]
    lines = [
        "# Human3R pseudo-labels", "",
        f"Pseudo-labelled people (SMPL-X) selected from the dataset at `{info['root']}` on {info['created_at']}: "
        f"**{counts['clips']} clips** ({counts['frames']} labelled frames, {counts['tracks']} tracks, "
        f"{counts['videos']} videos). Built by `human3r labels build` (human3r-archive).", "",
    ]
    if any(m.startswith(("untrained", "synthetic")) for m in info["models"]):
        lines += ["> **Warning**: some rows come from untrained weights or synthetic data "
                  f"({', '.join(sorted(info['models']))}); they are for testing the pipeline, not for training.", ""]
    lines += ["## Selection", "", "Tracks chosen from the `track_quality` table (see `human3r schema`) with:", "",
              "```sql", f"SELECT * FROM track_quality WHERE {info['where']}", "```", "",
              "then cut into clips: a track is split wherever it is missing from a processed frame, pieces shorter "
              f"than {info['options']['clips']['min_frames']} frames are left out ({counts['too_short']} pieces, "
              f"{counts['too_short_frames']} frames), longer ones are cut into near-equal clips of at most "
              f"{info['options']['clips']['max_frames']} frames. Splits are by video (a hash of the seed "
              f"{info['options']['split']['seed']} and the video id), so no video is in two splits. Options:", "",
              "```json", json.dumps(info["options"], indent=1, sort_keys=True), "```", ""]
    lines += ["## Splits", ""]
    rows = [[name, s["videos"], s["tracks"], s["clips"], s["frames"], f"{s['duration_s'] / 60:.1f}",
             _fmt(s["valid_frac"]), _fmt(s["jitter_mps3_mean"]), _fmt(s["foot_sliding_mps_mean"]),
             _fmt(s["ground_penetration_m_mean"])] for name, s in splits.items()]
    lines += _table(["split", "videos", "tracks", "clips", "frames", "minutes", "valid frames", "mean jitter m/s^3",
                     "mean foot sliding m/s", "mean penetration m"], rows)
    flag_names = [f.name for f in LABELS_SCHEMA if f.name.startswith("valid_")]
    lines += ["", "Share of frames passing each flag (null flags count as unknown, not failed):", ""]
    lines += _table(["split", *flag_names], [[name, *(_fmt(s["flags"].get(f)) for f in flag_names)]
                                             for name, s in splits.items()])
    lines += ["", "## Provenance", "",
              f"Dataset schema version {S.SCHEMA_VERSION}; runs' model versions (checkpoint identity): "
              + ", ".join(f"`{m}` ({n} videos)" for m, n in sorted(info["models"].items())) + ".", ""]
    if info.get("checkpoints"):
        lines += ["Checkpoint sha256: " + ", ".join(f"`{c}`" for c in info["checkpoints"]) + ".", ""]
    shown = info["videos"][:20]
    lines += [f"Every video with its run and source hash is in `videos.parquet` ({len(info['videos'])} rows); the "
              f"first {len(shown)}:", ""]
    lines += _table(["video_id", "split", "run_id", "content_sha256", "source_uri"],
                    [[v["video_id"], v["split"], v["run_id"], v["content_sha256"], v["source_uri"]] for v in shown])
    images = info["images"]
    lines += ["", "## Files", "",
              "- `labels/<split>.parquet`: one row per person per frame (image-label pairs). Load with "
              "`datasets.load_dataset(\"parquet\", data_files={\"train\": \"labels/train.parquet\", ...})` or "
              "`load_dataset(\"<this folder>\")`. Columns:", ""]
    lines += [f"  - `{f.name}`: {f.metadata[b'doc'].decode()}" for f in LABELS_SCHEMA]
    lines += ["", "- `amass/<split>/<clip_id>.npz`: AMASS-style SMPL-X sequences (keys `poses` (N,165), `trans`, "
              "`betas`, `gender`, `surface_model_type`, `mocap_frame_rate`, `root_orient`, `pose_body`, `pose_hand`, "
              "`pose_jaw`, `pose_eye`, `num_betas`, plus `expression`). **World: Z up**, the floor (the video's "
              "fitted ground plane) at z = 0, x = the first camera's x axis levelled, y = its forward direction "
              "levelled, origin on the floor below the first camera. Clips without stored joints (reconstructed "
              f"without a body model) have no npz: {counts['clips_without_npz']} of {counts['clips']}.",
              "- `clips.parquet`: one row per clip (ids, split, frame range, frame rate, npz path, its track's "
              "quality metrics); `videos.parquet`: provenance per video; `build.json`: this card's facts.",
              f"- images: {images['mode']}" + (f" ({images['written']} JPEGs under `images/`"
                                               + (f"; not cut: {images['errors']}" if images["errors"] else "")
                                               + ")" if images["mode"] != "none" else " (not cut)"), "",
              "## Licence notes", "", LICENCE_NOTES]
    return "\n".join(front + lines)


# ------------------------------------------------------------------------------------------------------------------
# The index files and the facts of the card
# ------------------------------------------------------------------------------------------------------------------

CLIPS_SCHEMA = pa.schema([
    ("clip_id", pa.string()), ("video_id", pa.string()), ("run_id", pa.string()), ("track_id", pa.int32()),
    ("split", pa.string()), ("first_frame_idx", pa.int32()), ("last_frame_idx", pa.int32()),
    ("n_frames", pa.int32()), ("duration_s", pa.float64()), ("frame_rate", pa.float64()),
    ("amass_path", pa.string()), ("valid_frac", pa.float32()), ("ground_from_points", pa.bool_()),
    *((m, pa.float32()) for m in CLIP_METRICS),
])
VIDEOS_SCHEMA = pa.schema([
    ("video_id", pa.string()), ("split", pa.string()), ("run_id", pa.string()), ("content_sha256", pa.string()),
    ("source_uri", pa.string()), ("model_version", pa.string()), ("checkpoint_sha256", pa.string()),
    ("preset", pa.string()), ("schema_version", pa.int32()), ("clips", pa.int32()),
])


def summarize_build(root_uri: str, where: str, options: LabelOptions, tracks_selected: int, facts: dict,
                    state: dict, folder: Path) -> dict:
    """Write clips.parquet and videos.parquet into `folder` and return the build's facts (build.json, the card).

    facts: video_id -> its runs row (with 'split'); state: what the export collected (clips, too_short, images,
    image_errors)."""
    clips = state["clips"]
    pq.write_table(pa.Table.from_pylist([{k: c[k] for k in CLIPS_SCHEMA.names} for c in clips], schema=CLIPS_SCHEMA),
                   folder / "clips.parquet")
    per_video: dict[str, int] = {}
    for c in clips:
        per_video[c["video_id"]] = per_video.get(c["video_id"], 0) + 1
    videos = [{"video_id": v, "split": f["split"], "run_id": f[S.RUN_ID],
               "content_sha256": f[S.CONTENT_SHA256], "source_uri": f[S.SOURCE_URI],
               "model_version": f[S.MODEL_VERSION], "checkpoint_sha256": f[S.CHECKPOINT_SHA256],
               "preset": f[S.PRESET], "schema_version": f[S.SCHEMA_VERSION_COL], "clips": per_video.get(v, 0)}
              for v, f in sorted(facts.items())]
    pq.write_table(pa.Table.from_pylist(videos, schema=VIDEOS_SCHEMA), folder / "videos.parquet")
    splits = {name: _split_stats([c for c in clips if c["split"] == name]) for name in SPLITS}
    label_files = {name: f"labels/{name}.parquet" for name in SPLITS if (folder / f"labels/{name}.parquet").exists()}
    models: dict[str, int] = {}
    for v in videos:
        models[v["model_version"]] = models.get(v["model_version"], 0) + 1
    errors = state["image_errors"]
    return {
        "root": root_uri, "where": where, "options": options.model_dump(mode="json"),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "schema_version": S.SCHEMA_VERSION,
        "counts": {
            "tracks_selected": tracks_selected, "videos": len(per_video), "clips": len(clips),
            "tracks": len({(c["video_id"], c["track_id"]) for c in clips}),
            "frames": sum(c["n_frames"] for c in clips), "too_short": len(state["too_short"]),
            "too_short_frames": int(sum(state["too_short"])),
            "clips_without_npz": sum(c["amass_path"] is None for c in clips),
        },
        "splits": splits, "label_files": label_files, "models": models,
        "checkpoints": sorted({v["checkpoint_sha256"] for v in videos if v["checkpoint_sha256"]}),
        "videos": videos,
        "images": {"mode": options.images, "written": state["images"],
                   "errors": (f"{len(errors)} videos, e.g. {next(iter(errors.values()))}" if errors else None)},
    }


def _split_stats(clips: list[dict]) -> dict:
    def mean(metric: str) -> float | None:
        values = [c[metric] for c in clips if c[metric] is not None]
        return float(np.mean(values)) if values else None

    frames = sum(c["n_frames"] for c in clips)
    flags: dict[str, list[int]] = {}
    for c in clips:
        for name, (true, known) in c["flags"].items():
            acc = flags.setdefault(name, [0, 0])
            acc[0], acc[1] = acc[0] + true, acc[1] + known
    return {
        "videos": len({c["video_id"] for c in clips}), "tracks": len({(c["video_id"], c["track_id"]) for c in clips}),
        "clips": len(clips), "frames": frames, "duration_s": float(sum(c["duration_s"] for c in clips)),
        "valid_frac": (sum(c["valid_frac"] * c["n_frames"] for c in clips) / frames) if frames else None,
        "jitter_mps3_mean": mean(S.JITTER_MPS3), "foot_sliding_mps_mean": mean(S.FOOT_SLIDING_MPS),
        "ground_penetration_m_mean": mean(S.GROUND_PENETRATION_M),
        "flags": {name: (t / k if k else None) for name, (t, k) in flags.items()},
    }
