"""Finding videos: expand files, folders and glob patterns into a sorted list of video paths."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from tasks.errors import SourceError

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".mts",
                            ".m2ts", ".wmv", ".flv", ".3gp", ".ogv", ".gif"})


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[") and not Path(text).exists()


def list_videos(sources: Iterable[str]) -> list[str]:
    """Files given directly are kept whatever their name or state (a bad one becomes a failure row later); folders
    are searched recursively for video suffixes; glob patterns are expanded. Order: as given, folders sorted.

    A folder or pattern that yields no video raises :class:`SourceError`: nothing would be done, and a user who
    pointed at the wrong folder should hear it.
    """
    out: list[str] = []
    for source in sources:
        text = os.fspath(source)
        if _is_glob(text):
            found = sorted(p for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not found:
                raise SourceError(f"the pattern {text!r} matches no file")
        elif Path(text).is_dir():
            found = sorted(str(p) for p in Path(text).rglob("*")
                           if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise SourceError(f"the folder {text} holds no video files (looked for "
                                  f"{', '.join(sorted(VIDEO_SUFFIXES))}, in subfolders too)")
        else:
            found = [text]
        out.extend(found)
    seen: set[str] = set()
    return [p for p in out if not (p in seen or seen.add(p))]
