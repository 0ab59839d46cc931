"""Finding videos: expand files, folders and glob patterns into a sorted list of video paths."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".mts",
                            ".m2ts", ".wmv", ".flv", ".3gp", ".ogv", ".gif"})


def list_videos(sources: Iterable[str]) -> list[str]:
    """Files given directly are kept whatever their name (a bad one becomes a failure row later); folders are
    searched recursively for video suffixes; glob patterns are expanded. Order: as given, folders sorted."""
    out: list[str] = []
    for source in sources:
        text = os.fspath(source)
        if any(ch in text for ch in "*?[") and not Path(text).exists():
            out.extend(sorted(p for p in glob.glob(text, recursive=True) if Path(p).is_file()))
        elif Path(text).is_dir():
            out.extend(sorted(str(p) for p in Path(text).rglob("*")
                              if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES))
        else:
            out.append(text)
    seen: set[str] = set()
    return [p for p in out if not (p in seen or seen.add(p))]
