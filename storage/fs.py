"""Where a dataset lives: a local folder or an S3 prefix, behind one small interface with atomic writes.

Local roots use the OS directly (temporary name in the same folder, fsync, ``os.replace``). Remote roots use
pyarrow's filesystems; an S3 PUT is atomic by itself (an object is either the old or the new one), which is all the
dataset marker (``_dataset.json``) needs (the tables commit through delta-rs: `storage.delta`). S3 endpoints other
than AWS (MinIO, moto, Ceph) are taken from the URI (``s3://bucket/prefix?endpoint_override=http://127.0.0.1:9000``)
or from ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pyarrow.fs as pafs

from storage.errors import RootError


@dataclasses.dataclass(frozen=True)
class Root:
    """A dataset root: the filesystem and the base path inside it."""

    uri: str  # as the user gave it (without credentials)
    fs: pafs.FileSystem
    base: str  # path inside `fs`, no trailing slash
    is_local: bool
    delta_options: tuple[tuple[str, str], ...] = ()  # delta-rs storage options (endpoint, region, safe commits)
    checked: bool = False  # its dataset marker was read and fits this code (`storage.dataset.init_dataset`)

    def table_uri(self, rel: str) -> str:
        """The URI delta-rs (and any Delta reader) opens for a table folder relative to the root."""
        return self.path(rel) if self.is_local else f"s3://{self.path(rel)}"

    @property
    def storage_options(self) -> dict[str, str]:
        return dict(self.delta_options)

    def path(self, rel: str) -> str:
        """Absolute path (inside `fs`) of a path relative to the root."""
        return f"{self.base}/{rel}" if rel else self.base

    def local_path(self, rel: str = "") -> Path:
        if not self.is_local:
            raise RootError(f"internal: {self.uri} is not a local folder")
        return Path(self.path(rel))


def open_root(uri: str | os.PathLike) -> Root:
    """Resolve a dataset root: a local path, ``file://`` or ``s3://bucket/prefix[?endpoint_override=...]``."""
    text = os.fspath(uri)
    if "://" not in text or text.startswith("file://"):
        local = Path(text.removeprefix("file://")).expanduser().resolve()
        return Root(uri=str(local), fs=pafs.LocalFileSystem(), base=str(local), is_local=True)
    parts = urlsplit(text)
    if parts.scheme != "s3":
        raise RootError(f"unsupported dataset root {text!r}: use a local path or s3://bucket/prefix")
    query = dict(parse_qsl(parts.query))
    endpoint = query.pop("endpoint_override", None) or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get(
        "AWS_ENDPOINT_URL")
    kwargs: dict = {}
    if endpoint:
        ep = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs.update(endpoint_override=ep.netloc, scheme=ep.scheme)
    if "region" in query:
        kwargs["region"] = query.pop("region")
    kwargs["region"] = kwargs.get("region") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    fs = pafs.S3FileSystem(**kwargs)
    base = f"{parts.netloc}{parts.path}".rstrip("/")
    shown = f"s3://{base}" + (f"?{urlencode({'endpoint_override': endpoint})}" if endpoint else "")
    # delta-rs: the same endpoint and region; commits use S3's conditional put (If-None-Match), which makes
    # concurrent writers safe without a lock service (AWS S3, MinIO, R2 and moto support it).
    options = {"AWS_REGION": kwargs["region"], "aws_conditional_put": "etag"}
    if endpoint:
        options["AWS_ENDPOINT_URL"] = f"{ep.scheme}://{ep.netloc}"
        if ep.scheme == "http":
            options["AWS_ALLOW_HTTP"] = "true"
    return Root(uri=shown, fs=fs, base=base, is_local=False, delta_options=tuple(sorted(options.items())))


def open_location(uri: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """Any file or folder location -> (pyarrow filesystem, path inside it), for reading sources (e.g. videos).

    Local paths, ``file://`` and ``s3://bucket/key[?endpoint_override=...&region=...]`` resolve as in
    :func:`open_root` (same endpoint and region rules); other schemes pyarrow knows (``gs://``, ``abfs://``,
    ``hdfs://``) through ``pyarrow.fs.FileSystem.from_uri``. Anything else raises :class:`RootError`.
    """
    text = os.fspath(uri)
    if "://" not in text or text.startswith(("file://", "s3://")):
        root = open_root(text)
        return root.fs, root.base
    try:
        return pafs.FileSystem.from_uri(text)
    except Exception as err:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError or ValueError here
        message = " ".join(str(err).split())[:200]
        detail = "" if "Unrecognized filesystem type" in message else f" ({type(err).__name__}: {message})"
        raise RootError(f"unsupported location {text!r}{detail}: use a local path, file://, s3://bucket/key or "
                        f"another pyarrow filesystem URI (gs://, abfs://, hdfs://)") from err


def exists(root: Root, rel: str) -> bool:
    return root.fs.get_file_info(root.path(rel)).type != pafs.FileType.NotFound


def read_bytes(root: Root, rel: str) -> bytes:
    with root.fs.open_input_stream(root.path(rel)) as f:
        return f.read()


def write_bytes_atomic(root: Root, rel: str, data: bytes) -> None:
    """Write a file so that readers see the old content or the new, never a part."""
    if root.is_local:
        final = root.local_path(rel)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f"{final.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return
    with root.fs.open_output_stream(root.path(rel)) as f:  # one PUT: atomic on S3
        f.write(data)


def list_files(root: Root, rel: str, *, recursive: bool = False) -> list[pafs.FileInfo]:
    """Files under `rel` (missing folder: empty list)."""
    selector = pafs.FileSelector(root.path(rel), allow_not_found=True, recursive=recursive)
    return [i for i in root.fs.get_file_info(selector) if i.type == pafs.FileType.File]


def delete(root: Root, rel: str) -> None:
    try:
        root.fs.delete_file(root.path(rel))
    except FileNotFoundError:
        pass
