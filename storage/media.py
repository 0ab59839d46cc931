"""Source videos: where one lives, how it is opened, how its frames are shown, and whether a failed read is worth
trying again. The pipeline (`tasks.reconstruction.decode`) and the dashboard (`dashboards.media`) both read videos
through this module, so a frame the dashboard shows is the frame the pipeline saw.

Locations are written as the user gives them: a local path, ``file:///path``, ``s3://bucket/key`` (endpoint and
region from ``?endpoint_override=...&region=...`` or the environment, as for dataset roots: see `storage.fs`), or
another URI pyarrow resolves (``gs://``, ``abfs://``, ``hdfs://``). That text is the video's ``source_uri``.

A remote object is never downloaded whole: PyAV reads it through a seekable pyarrow random-access file (each read
is one ranged GET on S3) and the content hash streams it once in `REMOTE_CHUNK` pieces. Local files keep the plain
path. PyAV is imported inside the functions that use it (``import storage`` stays light).

Every failure is a :class:`storage.errors.MediaError` with a one-line message and ``transient``:

* **permanent** (``transient=False``): the location does not name a usable file, whatever the time: no such file or
  object, a folder, empty, unreadable by permissions (local ``PermissionError``, S3 ``ACCESS_DENIED``), not a video,
  no video stream, an unsupported location. Trying again gives the same answer until the file changes.
* **transient** (``transient=True``, :func:`is_transient`): the bytes could not be fetched this time. By exception
  type: ``TimeoutError``, ``ConnectionError`` (reset, refused, aborted, broken pipe) and ``OSError`` with an errno in
  :data:`TRANSIENT_ERRNOS`. By the storage service's error code, as pyarrow reports it (``AWS Error <CODE> during
  <Operation> operation`` or ``HTTP status <N>``): the AWS SDK error types in :data:`TRANSIENT_AWS_ERRORS`
  (network, throttling, service unavailable, request timeout, internal failure), the S3 REST error codes in
  :data:`TRANSIENT_S3_CODES` (``SlowDown``, ``ServiceUnavailable``, ...) and the HTTP statuses in
  :data:`TRANSIENT_HTTP_STATUS` (408, 429, 5xx). pyarrow has already retried such a request a few times before we
  see it; the caller decides when to try again (the pipeline: a later run, see `tasks.reconstruction.sources`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pyarrow.fs as pafs

from storage.errors import MediaError, RootError
from storage.fs import open_location

LOCAL_CHUNK = 1 << 20  # bytes per read when hashing a local file
REMOTE_CHUNK = 8 << 20  # bytes per ranged GET when hashing a remote object (fewer requests, flat memory)

TRANSIENT_ERRNOS = frozenset({errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED, errno.EPIPE,
                              errno.ENETUNREACH, errno.ENETDOWN, errno.ENETRESET, errno.EHOSTUNREACH, errno.EHOSTDOWN,
                              errno.EAGAIN})
TRANSIENT_AWS_ERRORS = frozenset({"NETWORK_CONNECTION", "SLOW_DOWN", "THROTTLING", "SERVICE_UNAVAILABLE",
                                  "REQUEST_TIMEOUT", "INTERNAL_FAILURE"})
TRANSIENT_S3_CODES = frozenset({"SlowDown", "ServiceUnavailable", "RequestTimeout", "InternalError", "Throttling",
                                "ThrottlingException", "RequestLimitExceeded", "TooManyRequests",
                                "RequestThrottled", "BandwidthLimitExceeded", "OperationAborted"})
TRANSIENT_HTTP_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_AWS_ERROR = re.compile(r"AWS Error ([A-Z_]+)")
_HTTP_STATUS = re.compile(r"(?:HTTP status|HTTP response code|status code|\[code) ?:? ?(\d{3})")
_S3_CODE = re.compile(r"\b(" + "|".join(sorted(TRANSIENT_S3_CODES)) + r")\b")


# ------------------------------------------------------------------------------------------------ names
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


# ------------------------------------------------------------------------------------------------ errors
def transient_cause(err: BaseException) -> str | None:
    """Why `err` (or an exception it was raised from) says the bytes could not be fetched *this time*, or None when
    it does not: the exception type, errno, AWS error type, S3 error code or HTTP status that counts (see the module
    docstring)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, MediaError):
            return err.cause if err.transient else None
        if isinstance(err, TimeoutError | ConnectionError):
            return type(err).__name__
        if isinstance(err, OSError) and err.errno in TRANSIENT_ERRNOS:
            return errno.errorcode.get(err.errno, str(err.errno))
        text = str(err)
        code = next((c for c in _AWS_ERROR.findall(text) if c in TRANSIENT_AWS_ERRORS), None)
        code = code or next((f"HTTP {s}" for s in _HTTP_STATUS.findall(text) if int(s) in TRANSIENT_HTTP_STATUS), None)
        match = _S3_CODE.search(text)
        if code or match:
            return code or match.group(1)
        err = err.__cause__ or err.__context__
    return None


def is_transient(err: BaseException) -> bool:
    """True when `err` (or an exception it was raised from) says the bytes could not be fetched *this time*."""
    return transient_cause(err) is not None


def read_failure(uri: str, err: BaseException) -> MediaError:
    """The error for a location whose bytes (or facts) could not be fetched, classified by :func:`is_transient`."""
    cause = transient_cause(err)
    if cause is not None:
        return MediaError(f"{uri} could not be read this time ({cause}; {type(err).__name__}: {short_error(err)}); "
                          f"a transient error (network, throttling, timeout): it is tried again later",
                          transient=True, cause=cause)
    return MediaError(f"{uri} cannot be read ({type(err).__name__}: {short_error(err)}); check the endpoint, the "
                      f"credentials and the permissions")


# ------------------------------------------------------------------------------------------------ locations
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
        closes it. Raises MediaError."""
        try:
            return open(self.local, "rb") if self.local is not None else self.fs.open_input_file(self.fs_path)
        except OSError as err:
            raise read_failure(self.uri, err) from err

    def sha256(self) -> str:
        """Content hash, streaming the file once in chunks (a remote object is never held whole). Raises
        MediaError."""
        h = hashlib.sha256()
        try:
            if self.local is not None:
                with open(self.local, "rb") as f:
                    while chunk := f.read(LOCAL_CHUNK):
                        h.update(chunk)
            else:
                with self.fs.open_input_stream(self.fs_path, compression=None) as f:  # raw bytes, even for .gz
                    while chunk := f.read(REMOTE_CHUNK):
                        h.update(chunk)
        except OSError as err:
            raise read_failure(self.uri, err) from err
        return h.hexdigest()


def locate(path: str | os.PathLike) -> Location:
    """Check a video location; MediaError names why it cannot be used (and whether that may change)."""
    text = os.fspath(path)
    if not is_remote(text):
        return _locate_local(text)
    try:
        fs, fs_path = open_location(text)
    except RootError as err:
        raise MediaError(str(err)) from None
    try:
        info = fs.get_file_info(fs_path)
    except OSError as err:
        raise read_failure(text, err) from err
    if info.type == pafs.FileType.NotFound:
        raise MediaError(f"no such file: {text} (no object under that key)")
    if info.type == pafs.FileType.Directory:
        raise MediaError(f"{text} is a folder (a prefix), not a video file")
    if not info.size:
        raise MediaError(f"{text} is empty (0 bytes)")
    return Location(uri=text, size_bytes=info.size, fs=fs, fs_path=fs_path)


def _locate_local(text: str) -> Location:
    p = Path(text.removeprefix("file://"))
    try:
        if not p.exists():
            raise MediaError(f"no such file: {p} (moved, deleted, or a path on another machine)")
        if p.is_dir():
            raise MediaError(f"{p} is a folder, not a video file")
        if not os.access(p, os.R_OK):
            raise MediaError(f"{p} is not readable (permissions)")
        size = p.stat().st_size
    except OSError as err:  # a network mount that stopped answering
        raise read_failure(text, err) from err
    if size == 0:
        raise MediaError(f"{p} is empty (0 bytes)")
    return Location(uri=text, size_bytes=size, local=p)


# ------------------------------------------------------------------------------------------------ containers, frames
@contextlib.contextmanager
def open_container(location: Location, buffer_size: int):
    """The PyAV container of a checked video, with a video stream: opened by path when local, else through a
    seekable file object read `buffer_size` bytes at a time. Raises MediaError (not a video, no video stream, the
    bytes could not be fetched)."""
    import av

    file = None if location.local is not None else location.open_input()
    try:
        try:
            container = av.open(str(location.local) if file is None else file, metadata_errors="ignore",
                                buffer_size=buffer_size)
        except av.FFmpegError as err:
            raise MediaError(f"not a readable video ({type(err).__name__}: {short_error(err)})") from err
        except OSError as err:  # the file object's own error, re-raised by PyAV
            raise read_failure(location.uri, err) from err
        with container:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams})
                raise MediaError(f"no video stream (streams: {', '.join(kinds) or 'none'})")
            yield container
    finally:
        if file is not None:
            file.close()


def display_rotation(frame) -> int:
    """The counter-clockwise rotation in degrees (a multiple of 90) that shows a PyAV video frame upright."""
    return int(round(frame.rotation or 0))


def rotate(rgb: np.ndarray, rotation_deg: int) -> np.ndarray:
    """(H, W, 3) -> the image turned `rotation_deg` counter-clockwise ((W, H, 3) for 90 and 270), contiguous."""
    k = round(rotation_deg / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def frame_rgb(frame) -> np.ndarray:
    """A PyAV video frame as it is displayed: (H, W, 3) uint8 RGB, display rotation applied."""
    return rotate(frame.to_ndarray(format="rgb24"), display_rotation(frame))
