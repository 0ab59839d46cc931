"""What the loop works on: the tracks `where` selects (checked before anything is built or trained), and the videos
both models reconstruct for the comparison.

Plain functions over the dataset's read-only catalog and the label build's ``build.json``; the Prefect tasks are in
`tasks.loop.stages`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from pydantic import BaseModel

from storage import schema as S
from storage.catalog import open_catalog
from storage.errors import DatasetNotFoundError, QueryError
from storage.fs import open_root
from tasks.errors import UsageError

HELD_OUT = ("val", "test")


class NothingSelectedError(UsageError):
    """The selection chooses no track: nothing to label, nothing to train."""


@dataclasses.dataclass(frozen=True)
class Selection:
    """What `where` chooses among the scored tracks."""

    where: str
    tracks: int  # tracks chosen
    videos: int  # videos they belong to
    frames: int  # their frames (sum of n_frames)
    scored: int  # tracks scored in the dataset
    chosen: tuple[tuple[str, str, int], ...] = ()  # (video_id, run_id, track_id) of every track chosen

    def build_key(self, labels: BaseModel) -> str:
        """A name for the label build of this selection with `labels` (16 hex digits): the same runs, tracks and
        options give the same build, so a re-run finds it (and the fine-tuning run keyed by its folder) done."""
        what = {"where": self.where, "tracks": self.chosen, "labels": labels.model_dump(mode="json")}
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def line(self) -> str:
        return (f"selected {self.tracks} of {self.scored} scored tracks ({self.videos} videos, {self.frames} frames) "
                f"with: {self.where}")


def select(dataset: str, where: str) -> Selection:
    """Count what `where` (SQL over track_quality) selects in `dataset`; :class:`NothingSelectedError` when nothing.

    A `where` that is not valid SQL over track_quality is the catalog's one-line error (a UsageError as well)."""
    try:
        with open_catalog(open_root(dataset)) as cat:
            scored = cat.query(f"SELECT count(*) FROM {S.TRACK_QUALITY.name}").column(0)[0].as_py()
            rows = cat.query(f"SELECT {S.VIDEO_ID}, {S.RUN_ID}, {S.TRACK_ID}, {S.N_FRAMES_TRACK} FROM "
                             f"{S.TRACK_QUALITY.name} WHERE ({where}) ORDER BY {S.VIDEO_ID}, {S.TRACK_ID}").to_pylist()
    except DatasetNotFoundError as err:
        raise UsageError(f"{err}; reconstruct videos into it first (`human3r reconstruct` or reconstruct-archive)"
                         ) from None
    except QueryError as err:
        raise UsageError(f"where {where!r} is not a condition over track_quality: {err}") from None
    chosen = tuple((r[S.VIDEO_ID], r[S.RUN_ID], int(r[S.TRACK_ID])) for r in rows)
    frames = sum(r[S.N_FRAMES_TRACK] or 0 for r in rows)
    selection = Selection(where, len(rows), len({r[S.VIDEO_ID] for r in rows}), frames, int(scored), chosen)
    if selection.tracks == 0:
        hint = ("no track is scored yet: reconstruct videos with people into it first" if scored == 0 else
                f"loosen it (`human3r query --root {dataset} \"SELECT * FROM track_quality LIMIT 10\"` shows the "
                "metrics)")
        raise NothingSelectedError(f"where {where!r} selects none of the {scored} scored tracks of {dataset}: {hint}; "
                                   "nothing was built or trained")
    return selection


@dataclasses.dataclass(frozen=True)
class CompareVideos:
    """The videos both models reconstruct."""

    uris: tuple[str, ...]
    held_out: bool  # False: they are among the videos the model was fine-tuned on
    origin: str  # where they come from, for the report

    @property
    def line(self) -> str:
        seen = "held out of training" if self.held_out else "seen in training (the build holds no held-out video)"
        return f"{len(self.uris)} video(s) from {self.origin}, {seen}"


def build_videos(build: str | Path) -> list[dict]:
    """The build's videos (``build.json``: video_id, split, run_id, content_sha256, source_uri)."""
    info = json.loads((Path(build) / "build.json").read_text())
    return sorted(info.get("videos", []), key=lambda v: v["video_id"])


def compare_videos(build: str | Path, source: str | None, max_videos: int) -> CompareVideos:
    """The videos to compare on: those under `source` when given, else the build's held-out videos (val, test),
    else all its videos; at most `max_videos`."""
    if source:
        from tasks.reconstruction.archive import discover

        uris = [item.uri for item in discover(source)][:max_videos]
        trained = {v["source_uri"] for v in build_videos(build) if v["split"] not in HELD_OUT}
        return CompareVideos(tuple(uris), not trained & set(uris), source)
    videos = build_videos(build)
    held = [v for v in videos if v["split"] in HELD_OUT]
    chosen = held or videos
    if not chosen:
        raise UsageError(f"the label build {build} holds no video to compare on; give options.compare.source")
    return CompareVideos(tuple(v["source_uri"] for v in chosen[:max_videos]), bool(held),
                         f"the label build's {'val/test splits' if held else 'videos'}")
