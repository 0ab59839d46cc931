"""Where a video lives: a local file, or an object behind a pyarrow filesystem (S3, ...); checked, opened, hashed.

Locations are written as the user gives them: a local path, ``file:///path``, ``s3://bucket/key`` (endpoint and
region from ``?endpoint_override=...&region=...`` or the environment, as for dataset roots: see `storage.fs`), or
another URI pyarrow resolves (``gs://``, ``abfs://``, ``hdfs://``). That text is the video's ``source_uri``.

A remote object is never downloaded whole: PyAV reads it through a seekable pyarrow random-access file (each read
is one ranged GET on S3), so a probe fetches the header and the first frame, decoding streams the object in
bounded reads, and the content hash streams it once in `REMOTE_CHUNK` pieces. Local files keep the plain path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from storage.errors import RootError
from storage.fs import open_location
from tasks.errors import VideoError

LOCAL_CHUNK = 1 << 20  # bytes per read when hashing a local file
REMOTE_CHUNK = 8 << 20  # bytes per ranged GET when hashing a remote object (fewer requests, flat memory)


def is_remote(text: str) -> bool:
    """True for a URI that is not a local path or ``file://``."""
    return "://" in text and not text.startswith("file://")


def split_query(text: str) -> tuple[str, str]:
    """``s3://b/k?endpoint_override=X`` -> (``s3://b/k``, ``endpoint_override=X``); local paths have no query."""
    if not is_remote(text) or not urlsplit(text).query:
        return text, ""
    base, _, query = text.partition("?")
    return base, query


def file_name(text: str) -> str:
    """The last path element of a location, without its query (``s3://b/day/a.mp4?x=y`` -> ``a.mp4``)."""
    return split_query(text)[0].rstrip("/").rsplit("/", 1)[-1]


def short_error(err: BaseException) -> str:
    """One line of at most 200 characters naming what went wrong."""
    text = " ".join(str(err).split())
    return text[:200] or type(err).__name__


def read_error(uri: str, err: BaseException) -> VideoError:
    """The probe failure for a location that exists but whose bytes cannot be fetched."""
    return VideoError(f"{uri} cannot be read ({type(err).__name__}: {short_error(err)}); check the endpoint, "
                      f"the credentials and the permissions")


@dataclasses.dataclass(frozen=True)
class Location:
    """A checked video file: it exists, is a file, is readable and is not empty."""

    uri: str  # as given (the source_uri of its rows and failures)
    size_bytes: int
    local: Path | None = None  # the file, for a local path or file://
    fs: pafs.FileSystem | None = None  # else the filesystem holding the object ...
    fs_path: str = ""  # ... and the object's path inside it

    @property
    def name(self) -> str:
        """The file name, for logs and progress bars."""
        return file_name(self.uri)

    def open_input(self):
        """A seekable binary file (``pyarrow.NativeFile`` with ranged reads for a remote object); the caller
        closes it."""
        if self.local is not None:
            return open(self.local, "rb")
        try:
            return self.fs.open_input_file(self.fs_path)
        except OSError as err:
            raise read_error(self.uri, err) from err

    def sha256(self) -> str:
        """Content hash, streaming the file once in chunks (a remote object is never held whole)."""
        h = hashlib.sha256()
        if self.local is not None:
            with open(self.local, "rb") as f:
                while chunk := f.read(LOCAL_CHUNK):
                    h.update(chunk)
            return h.hexdigest()
        try:
            with self.fs.open_input_stream(self.fs_path, compression=None) as f:  # raw bytes, even for .gz
                while chunk := f.read(REMOTE_CHUNK):
                    h.update(chunk)
        except OSError as err:
            raise read_error(self.uri, err) from err
        return h.hexdigest()


def locate(path: str | os.PathLike) -> Location:
    """Check a video location; `VideoError` (stage "probe") names why it cannot be used."""
    text = os.fspath(path)
    if not is_remote(text):
        return _locate_local(text)
    try:
        fs, fs_path = open_location(text)
    except RootError as err:
        raise VideoError(str(err)) from None
    try:
        info = fs.get_file_info(fs_path)
    except OSError as err:
        raise read_error(text, err) from err
    if info.type == pafs.FileType.NotFound:
        raise VideoError(f"no such file: {text} (no object under that key)")
    if info.type == pafs.FileType.Directory:
        raise VideoError(f"{text} is a folder (a prefix), not a video file")
    if not info.size:
        raise VideoError(f"{text} is empty (0 bytes)")
    return Location(uri=text, size_bytes=info.size, fs=fs, fs_path=fs_path)


def _locate_local(text: str) -> Location:
    p = Path(text.removeprefix("file://"))
    if not p.exists():
        raise VideoError(f"no such file: {p}")
    if p.is_dir():
        raise VideoError(f"{p} is a folder, not a video file")
    if not os.access(p, os.R_OK):
        raise VideoError(f"{p} is not readable (permissions)")
    size = p.stat().st_size
    if size == 0:
        raise VideoError(f"{p} is empty (0 bytes)")
    return Location(uri=text, size_bytes=size, local=p)
