"""Finding videos: expand files, folders, glob patterns and object-storage prefixes into a sorted list of locations.

An S3 prefix (or any pyarrow filesystem URI, see `storage.media`) is listed like a folder. Every object
found is written as the prefix the user gave, then its key below that prefix, then the user's query string unchanged::

    s3://archive/inbox?endpoint_override=http://127.0.0.1:9000
      -> s3://archive/inbox/day1/a.mp4?endpoint_override=http://127.0.0.1:9000

so the endpoint (and region) travel with each video into its ``source_uri``, to the Ray actors that read it and to
any later run, with no environment needed there. Without a query the endpoint comes from ``AWS_ENDPOINT_URL`` where
the video is read. Credentials never appear in a location; they come from the environment or the AWS config.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Iterable
from pathlib import Path

import pyarrow.fs as pafs

from storage.errors import RootError
from storage.fs import open_location
from storage.media import short_error, split_query
from tasks.errors import SourceError

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".mts",
                            ".m2ts", ".wmv", ".flv", ".3gp", ".ogv", ".gif"})


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[") and not Path(text).exists()


def _no_videos(where: str) -> SourceError:
    return SourceError(f"{where} holds no video files (looked for {', '.join(sorted(VIDEO_SUFFIXES))}, in "
                       f"subfolders too)")


TEMP_SUFFIXES = frozenset({".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".filepart", ".swp"})


def is_video_name(relative: str) -> bool:
    """A video file a listing should pick up: a video suffix, and neither hidden (a part of the path below the listed
    folder starts with '.') nor temporary or partial (a suffix in TEMP_SUFFIXES anywhere, e.g. `x.mp4.part`,
    `x.part.mp4`, or a trailing '~'): files still being written or moved into place are left for the next run."""
    parts = relative.replace("\\", "/").split("/")
    name = parts[-1]
    suffixes = [f".{s}" for s in name.split(".")[1:]]
    return (os.path.splitext(name)[1].lower() in VIDEO_SUFFIXES and not name.endswith("~")
            and not any(p.startswith(".") for p in parts) and not any(s.lower() in TEMP_SUFFIXES for s in suffixes))


@dataclasses.dataclass(frozen=True)
class Listed:
    """A video location and what the listing says of it (enough to tell a changed file from an unchanged one)."""

    uri: str  # as it becomes source_uri
    size_bytes: int | None  # None when it could not be stat'ed (missing): it will be probed and fail
    mtime_ns: int | None


def _listed_local(path: str) -> Listed:
    try:
        st = os.stat(path)
    except OSError:
        return Listed(path, None, None)
    return Listed(path, st.st_size, st.st_mtime_ns)


def _mtime_ns(info: pafs.FileInfo) -> int | None:
    return info.mtime_ns if info.mtime is not None else None


def list_location(uri: str) -> list[Listed]:
    """One URI (``s3://bucket/prefix``, ``s3://bucket/key.mp4``, ``file:///folder``, ...) -> video locations.

    An object is kept as given (a bad one becomes a failure row later); a prefix is listed recursively for video
    suffixes and sorted. A prefix with no video, a pattern (not supported on object storage), an unsupported
    scheme or a listing that fails (endpoint, credentials) raise :class:`SourceError`.
    """
    base, query = split_query(uri)
    try:
        fs, path = open_location(uri)
    except RootError as err:
        raise SourceError(str(err)) from None
    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.File:
            return [Listed(uri, info.size, _mtime_ns(info))]
        if info.type == pafs.FileType.NotFound:
            if any(ch in base.partition("://")[2] for ch in "*?["):
                raise SourceError(f"{uri!r}: patterns are not supported on object storage; give a prefix "
                                  f"(s3://bucket/folder/) or one object")
            if base.endswith("/"):
                raise _no_videos(f"the prefix {uri}")
            return [Listed(uri, None, None)]  # a missing object: kept, it becomes a "no such file" failure row
        listed = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    except OSError as err:
        raise SourceError(f"cannot list {uri} ({type(err).__name__}: {short_error(err)}); check the endpoint, "
                          f"the credentials and the bucket name") from err
    suffix = f"?{query}" if query else ""
    prefix = base.rstrip("/")
    found = sorted((Listed(f"{prefix}/{i.path[len(path):].lstrip('/')}{suffix}", i.size, _mtime_ns(i)) for i in listed
                    if i.type == pafs.FileType.File and is_video_name(i.path[len(path):].lstrip("/"))),
                   key=lambda item: item.uri)
    if not found:
        raise _no_videos(f"the prefix {uri}")
    return found


def list_sources(sources: Iterable[str]) -> list[Listed]:
    """Files given directly are kept whatever their name or state (a bad one becomes a failure row later); folders
    and object-storage prefixes are searched recursively for video names (:func:`is_video_name`); glob patterns
    are expanded. Each comes with its size and modification time from the listing (one stat per local file, none
    extra on object storage). Order: as given, folders sorted; duplicates dropped.

    A folder, prefix or pattern that yields no video raises :class:`SourceError`: nothing would be done, and a user
    who pointed at the wrong folder should hear it.
    """
    out: list[Listed] = []
    for source in sources:
        text = os.fspath(source)
        if "://" in text:
            found = list_location(text)
        elif _is_glob(text):
            found = [_listed_local(p) for p in sorted(glob.glob(text, recursive=True)) if Path(p).is_file()]
            if not found:
                raise SourceError(f"the pattern {text!r} matches no file")
        elif Path(text).is_dir():
            found = [_listed_local(str(p)) for p in sorted(Path(text).rglob("*"))
                     if is_video_name(str(p.relative_to(text))) and p.is_file()]
            if not found:
                raise _no_videos(f"the folder {text}")
        else:
            found = [_listed_local(text)]
        out.extend(found)
    seen: set[str] = set()
    return [item for item in out if not (item.uri in seen or seen.add(item.uri))]
