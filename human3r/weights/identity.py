"""Which weights a model carries: :class:`ModelIdentity`, the model version (the dataset key), and file hashes.

``model_version`` is ``human3r-<preset>-<sha256[:16]>`` for a weights file (a converted file keeps the version of
the file it came from) and ``untrained-<preset>-seed<n>`` for untrained weights. File hashes are streamed and
cached in ``$HUMAN3R_CACHE_DIR/sha256.json`` (default ``~/.cache/human3r``) by (path, size, mtime).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from human3r.config import Human3RConfig
from human3r.weights.strict import LoadReport

__all__ = [
    "CACHE_ENV",
    "ModelIdentity",
    "atomic_write_text",
    "file_sha256",
    "forget_sha256",
    "model_version",
    "preset_of",
    "untrained_identity",
]

CACHE_ENV = "HUMAN3R_CACHE_DIR"  # where the sha256 cache lives (default ~/.cache/human3r)


@dataclass(frozen=True)
class ModelIdentity:
    """Which weights a model carries. ``model_version`` is the dataset key ([A-Za-z0-9._-] only)."""

    spec: str  # what was asked for: a path, `auto`, `hf:...`, `untrained:<preset>[:seed]`
    name: str  # file name, or `untrained:<preset>:<seed>`
    preset: str  # matching preset (`896L`, `tiny`, ...) or `custom`
    model_version: str  # `human3r-<preset>-<sha256[:16]>` or `untrained-<preset>-seed<seed>`
    config: Human3RConfig = field(repr=False)  # the network the weights are for (working image size, ...)
    sha256: str | None = None  # of the weights file; None for untrained weights
    path: str | None = None  # resolved weights file
    is_untrained: bool = False  # random weights on purpose (smoke runs)
    report: LoadReport | None = field(default=None, compare=False, repr=False)  # set when tensors were checked

    def to_dict(self) -> dict[str, Any]:
        """The identity as plain values (without the config and the load report)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("config", "report")}


def preset_of(config: Human3RConfig) -> str:
    """Name of the preset equal to ``config`` (ignoring its ``name``), else ``custom``."""
    for name in Human3RConfig.preset_names():
        if dataclasses.replace(Human3RConfig.preset(name), name=config.name) == config:
            return name
    return "custom"


def model_version(preset: str, sha256: str) -> str:
    """The dataset key of a weights file: ``human3r-<preset>-<sha256[:16]>``."""
    return f"human3r-{preset}-{sha256[:16]}"


def untrained_identity(spec: str, preset: str, seed: int) -> ModelIdentity:
    """Identity of ``untrained:<preset>:<seed>`` weights (model version ``untrained-<preset>-seed<seed>``)."""
    return ModelIdentity(spec, f"untrained:{preset}:{seed}", preset, f"untrained-{preset}-seed{seed}",
                         Human3RConfig.preset(preset), is_untrained=True)


# ------------------------------------------------------------------------------------------------------------------
# Hashing (streamed, cached by path/size/mtime)
# ------------------------------------------------------------------------------------------------------------------


def _cache_file() -> Path:
    root = os.environ.get(CACHE_ENV) or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "human3r")
    return Path(root).expanduser() / "sha256.json"


def file_sha256(path: str | os.PathLike, use_cache: bool = True) -> str:
    """sha256 of a file, streamed in 8 MiB blocks; cached in ~/.cache/human3r/sha256.json by (path, size, mtime)."""
    p = Path(path).resolve()
    st = p.stat()
    key, stamp = str(p), [st.st_size, st.st_mtime_ns]
    cache_file = _cache_file()
    cache: dict[str, Any] = {}
    if use_cache:
        with contextlib.suppress(OSError, ValueError):
            cache = json.loads(cache_file.read_text())
        hit = cache.get(key)
        if isinstance(hit, dict) and hit.get("stamp") == stamp and isinstance(hit.get("sha256"), str):
            return hit["sha256"]
    digest = hashlib.sha256()
    with open(p, "rb") as f:
        while block := f.read(8 << 20):
            digest.update(block)
    sha = digest.hexdigest()
    if use_cache:
        cache[key] = {"stamp": stamp, "sha256": sha}
        with contextlib.suppress(OSError):  # a read-only home only costs the cache
            atomic_write_text(cache_file, json.dumps(cache, indent=1, sort_keys=True))
    return sha


def forget_sha256(path: str | os.PathLike) -> None:
    """Drop a file's cached hash so the next :func:`file_sha256` reads it again (no cache: nothing to do)."""
    cache_file = _cache_file()
    with contextlib.suppress(OSError, ValueError):  # no cache yet, or an unreadable one
        cache = json.loads(cache_file.read_text())
        if cache.pop(str(Path(path).resolve()), None) is not None:
            atomic_write_text(cache_file, json.dumps(cache, indent=1, sort_keys=True))


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path``, then rename it: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
