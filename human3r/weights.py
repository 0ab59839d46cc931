"""Checkpoints: which weights a spec names, the identity of loaded weights, and our safetensors format.

* A spec is a path (an official ``.pth`` or our ``.safetensors``), ``auto``, ``hf:<owner>/<repo>/<file>`` or
  ``untrained:<preset>[:seed]``; :func:`load_model` resolves it, builds the network and loads the weights.
* Official files are read safely by :mod:`human3r.checkpoint_io` (nothing is ever evaluated); the network is built
  on the meta device and matched strictly by :mod:`human3r.strict_load`. Their public names are re-exported here.
* Our format is ``<name>.safetensors`` + ``<name>.json`` (config, aliases, model version). DPT alias keys
  (``scratch.layer_rn.{i}`` is ``scratch.layer{i+1}_rn``) are one tensor: stored once, restored on load.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from human3r.checkpoint_io import (
    CHECKPOINT_ENV,
    DEFAULT_PRESET,
    HF_REPO,
    OFFICIAL_FILES,
    README_FILE,
    OfficialCheckpoint,
    _get_weights_hint,
    parse_constructor,
    read_official_checkpoint,
)
from human3r.config import Human3RConfig
from human3r.errors import CheckpointError, ConfigError
from human3r.strict_load import (
    LoadReport,
    _alias_groups,
    _assign,
    _build_empty,
    _finish,
    _model_class,
    check_state_dict,
)

__all__ = [
    "CHECKPOINT_ENV",
    "DEFAULT_PRESET",
    "HF_REPO",
    "OFFICIAL_FILES",
    "LoadReport",
    "ModelIdentity",
    "OfficialCheckpoint",
    "check_state_dict",
    "download_official",
    "file_sha256",
    "inspect_weights",
    "load_checkpoint",
    "load_model",
    "parse_constructor",
    "preset_of",
    "read_official_checkpoint",
    "save_checkpoint",
    "verify_checkpoint",
]

logger = logging.getLogger(__name__)

CACHE_ENV = "HUMAN3R_CACHE_DIR"  # where the sha256 cache lives (default ~/.cache/human3r)
FORMAT, FORMAT_VERSION = "human3r-safetensors", 1
_SAFETENSORS_PIP = "pip install safetensors==0.8.0"
_HF_PIP = "pip install 'huggingface_hub>=0.30,<3'"


# ------------------------------------------------------------------------------------------------------------------
# Identity
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelIdentity:
    """Which weights a model carries. ``model_version`` is the dataset key ([A-Za-z0-9._-] only)."""

    spec: str  # what was asked for: a path, `auto`, `hf:...`, `untrained:<preset>[:seed]`
    name: str  # file name, or `untrained:<preset>:<seed>`
    preset: str  # matching preset (`896L`, `tiny`, ...) or `custom`
    model_version: str  # `human3r-<preset>-<sha256[:16]>` or `untrained-<preset>-seed<seed>`
    sha256: str | None = None  # of the weights file; None for untrained weights
    path: str | None = None  # resolved weights file
    is_untrained: bool = False  # random weights on purpose (smoke runs)
    report: LoadReport | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("report")
        return d


def preset_of(config: Human3RConfig) -> str:
    """Name of the preset equal to ``config`` (ignoring its ``name``), else ``custom``."""
    for name in Human3RConfig.preset_names():
        if dataclasses.replace(Human3RConfig.preset(name), name=config.name) == config:
            return name
    return "custom"


def _model_version(preset: str, sha256: str) -> str:
    return f"human3r-{preset}-{sha256[:16]}"


# ------------------------------------------------------------------------------------------------------------------
# Hashing (streamed, cached by path/size/mtime)
# ------------------------------------------------------------------------------------------------------------------


def _cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV) or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "human3r")
    return Path(root).expanduser()


def file_sha256(path: str | os.PathLike, use_cache: bool = True) -> str:
    """sha256 of a file, streamed in 8 MiB blocks; cached in ~/.cache/human3r/sha256.json by (path, size, mtime)."""
    p = Path(path).resolve()
    st = p.stat()
    key, stamp = str(p), [st.st_size, st.st_mtime_ns]
    cache_file = _cache_dir() / "sha256.json"
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
            _atomic_write_text(cache_file, json.dumps(cache, indent=1, sort_keys=True))
    return sha


def _atomic_write_text(path: Path, text: str) -> None:
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


# ------------------------------------------------------------------------------------------------------------------
# The configuration an official file describes
# ------------------------------------------------------------------------------------------------------------------


def _config_from_constructor(constructor: str | None, preset: str | None, source: Path) -> Human3RConfig:
    if constructor is None:
        if preset is None:
            raise CheckpointError(
                f"{source} has no args.model constructor string, so its configuration is unknown; pass the preset "
                f"(preset=... / --preset, one of {list(Human3RConfig.preset_names())})."
            )
        return Human3RConfig.preset(preset)
    kwargs = parse_constructor(constructor)
    kwargs["landscape_only"] = False  # the reference forces this too: portrait frames are processed as they are
    # A released variant is fully described by its string (backbone, mhmr_img_res); only other presets (tiny)
    # supply internals the reference hard-codes, so only they are passed on as a hint.
    hint = None if preset in OFFICIAL_FILES else preset
    try:
        with warnings.catch_warnings(record=True) as caught:  # training-only arguments are expected
            warnings.simplefilter("always")
            config = Human3RConfig.from_reference_kwargs(kwargs, preset_hint=hint)
        for w in caught:
            logger.debug("%s: %s", source, w.message)
    except ConfigError as err:
        raise CheckpointError(f"{source}: its model configuration is not supported: {err}") from err
    if preset in OFFICIAL_FILES and preset_of(config) != preset:
        logger.warning("%s holds the %s variant, not the requested %s; using the file's", source,
                       preset_of(config), preset)
    return config


# ------------------------------------------------------------------------------------------------------------------
# Our format: safetensors + JSON side by side
# ------------------------------------------------------------------------------------------------------------------


def _sidecar(path: Path) -> tuple[Path, Path]:
    """(weights.safetensors, weights.json) for either file name."""
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def save_checkpoint(
    model: nn.Module, path: str | os.PathLike, *, model_version: str | None = None, source: dict | None = None
) -> Path:
    """Write ``<path>.safetensors`` + ``<path>.json``; returns the .safetensors path.

    Alias keys are stored once and listed in the JSON. ``model_version`` (default: derived from the file's
    sha256) and ``source`` (e.g. the official file and its sha256) are recorded, so a converted checkpoint keeps
    the dataset key of the file it came from.
    """
    try:
        from safetensors.torch import save_file
    except ImportError as err:
        raise ImportError(f"saving checkpoints needs safetensors: {_SAFETENSORS_PIP}") from err
    weights_path, json_path = _sidecar(Path(path))
    config: Human3RConfig = model.cfg
    aliases = {alias: group[0] for group in _alias_groups(model) for alias in group[1:]}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items() if k not in aliases}
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights_path.with_name(f".{weights_path.name}.tmp")
    save_file(tensors, str(tmp), metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    os.replace(tmp, weights_path)
    sha = file_sha256(weights_path)
    preset = preset_of(config)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "preset": preset,
        "model_version": model_version or _model_version(preset, sha),
        "weights_file": weights_path.name,
        "weights_sha256": sha,
        "aliases": aliases,
        "source": source or {},
        "config": config.to_dict(),
    }
    _atomic_write_text(json_path, json.dumps(meta, indent=1) + "\n")
    return weights_path


def _read_sidecar(path: Path) -> tuple[Path, dict[str, Any]]:
    weights_path, json_path = _sidecar(path)
    if not json_path.is_file():
        raise CheckpointError(
            f"{weights_path} has no {json_path.name} next to it; our safetensors checkpoints are written with their "
            "JSON config by `human3r weights convert` / save_checkpoint. Re-run the conversion."
        )
    try:
        meta = json.loads(json_path.read_text())
    except ValueError as err:
        raise CheckpointError(f"{json_path} is not valid JSON: {err}. Re-run the conversion.") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{json_path} is not a {FORMAT} v{FORMAT_VERSION} description (format={meta.get('format')!r}, "
            f"version={meta.get('format_version')!r}). Re-run `human3r weights convert`."
        )
    if not weights_path.is_file():
        raise CheckpointError(f"{json_path} describes {weights_path}, which does not exist. Re-run the conversion.")
    return weights_path, meta


# ------------------------------------------------------------------------------------------------------------------
# Resolving a spec, identity without building, and loading
# ------------------------------------------------------------------------------------------------------------------


def _hf_cache_dir() -> str:
    """The Hugging Face hub cache, from the environment at call time (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME)."""
    home = os.getenv("HF_HOME") or os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    cache = os.getenv("HF_HUB_CACHE") or os.getenv("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
    return os.path.expandvars(os.path.expanduser(cache))


def _import_hf():
    try:
        import huggingface_hub
    except ImportError as err:
        raise ImportError(f"Hugging Face downloads need huggingface_hub: {_HF_PIP}") from err
    return huggingface_hub


def _candidate_files(preset: str | None) -> list[str]:
    names = [OFFICIAL_FILES[preset]] if preset in OFFICIAL_FILES else []
    names += [n for n in OFFICIAL_FILES.values() if n not in names] + [README_FILE]
    return names


def _expand_auto(spec: str) -> tuple[str, str]:
    """`auto` -> $HUMAN3R_CHECKPOINT when set (any spec but `auto`); other specs unchanged. Returns (spec, origin)."""
    if spec != "auto":
        return spec, "argument"
    env = os.environ.get(CHECKPOINT_ENV, "").strip()
    if env == "auto":
        raise CheckpointError(f"{CHECKPOINT_ENV}=auto would resolve to itself; set it to a path or an hf:... spec")
    return (env, f"${CHECKPOINT_ENV}") if env else ("auto", "auto")


def _auto_path(preset: str | None) -> Path:
    """`auto` without $HUMAN3R_CHECKPOINT: the first official file in the Hugging Face cache (preset's first)."""
    hub = _import_hf()
    cache = _hf_cache_dir()
    names = _candidate_files(preset)
    for name in names:
        found = hub.try_to_load_from_cache(HF_REPO, name, cache_dir=cache)
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    raise CheckpointError(
        f"no Human3R weights found for `auto`: ${CHECKPOINT_ENV} is not set and the Hugging Face cache {cache} "
        f"holds none of {names} from {HF_REPO}. {_get_weights_hint(preset)}"
    )


def download_official(filename: str | None = None, *, preset: str | None = None, repo: str = HF_REPO) -> Path:
    """Fetch an official file with huggingface_hub (cached); offline or missing -> CheckpointError with next steps."""
    hub = _import_hf()
    name = filename or OFFICIAL_FILES.get(preset or DEFAULT_PRESET, OFFICIAL_FILES[DEFAULT_PRESET])
    try:
        return Path(hub.hf_hub_download(repo_id=repo, filename=name, cache_dir=_hf_cache_dir()))
    except Exception as err:  # offline, no such file, gated repo, HTTP errors: all need the same advice
        raise CheckpointError(
            f"could not download {name} from Hugging Face repo {repo}: {type(err).__name__}: {err}. "
            f"If this machine is offline, download it elsewhere with `huggingface-cli download {repo} {name}` and "
            f"copy the file here, then set {CHECKPOINT_ENV}=/path/to/{name} (or pass the path)."
        ) from err


def _parse_untrained(spec: str, preset: str | None) -> tuple[str, int]:
    parts = spec.split(":")
    name = parts[1] if len(parts) > 1 and parts[1] else (preset or DEFAULT_PRESET)
    try:
        seed = int(parts[2]) if len(parts) > 2 else 0
    except ValueError:
        raise CheckpointError(f"bad spec {spec!r}: the seed must be an integer (untrained:<preset>[:seed])") from None
    if len(parts) > 3 or name not in Human3RConfig.preset_names():
        raise CheckpointError(
            f"bad spec {spec!r}: expected untrained:<preset>[:seed], preset in {list(Human3RConfig.preset_names())}"
        )
    return name, seed


def _resolve_path(spec: str, origin: str, preset: str | None, download: bool) -> Path:
    """The weights file a (non-untrained, auto-expanded) spec names."""
    if spec == "auto":
        return _auto_path(preset)
    if spec.startswith("hf:"):
        rest = spec[3:].strip("/")
        parts = rest.split("/")
        repo, name = ("/".join(parts[:2]), "/".join(parts[2:])) if len(parts) > 2 else (HF_REPO, rest)
        if not name:
            raise CheckpointError(
                f"bad spec {spec!r}: expected hf:<owner>/<repo>/<file>, "
                f"e.g. hf:{HF_REPO}/{OFFICIAL_FILES[DEFAULT_PRESET]}"
            )
        if download:
            return download_official(name, repo=repo)
        found = _import_hf().try_to_load_from_cache(repo, name, cache_dir=_hf_cache_dir())
        if not (isinstance(found, str) and os.path.isfile(found)):
            raise CheckpointError(
                f"{spec} is not in the Hugging Face cache {_hf_cache_dir()}. {_get_weights_hint(preset)}"
            )
        return Path(found)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise CheckpointError(f"weights file {path} (from {origin}) does not exist. {_get_weights_hint(preset)}")
    return path


def _is_ours(path: Path) -> bool:
    return path.suffix in (".safetensors", ".json")


def inspect_weights(spec: str, *, preset: str | None = None, download: bool = False) -> ModelIdentity:
    """Identity of the weights ``spec`` names, without building the network (reads only the config)."""
    asked = spec
    spec, origin = _expand_auto(spec)
    if spec.startswith("untrained"):
        return _untrained_identity(asked, *_parse_untrained(spec, preset))
    path = _resolve_path(spec, origin, preset, download)
    if _is_ours(path):
        weights_path, meta = _read_sidecar(path)
        config = Human3RConfig.from_dict(meta["config"])
        sha = file_sha256(weights_path)
        _check_recorded_sha(weights_path, meta, sha)
        version = meta.get("model_version") or _model_version(preset_of(config), sha)
        return ModelIdentity(asked, weights_path.name, preset_of(config), version, sha, str(weights_path))
    ck = read_official_checkpoint(path)
    config = _config_from_constructor(ck.constructor, preset, path)
    sha = file_sha256(path)
    name = preset_of(config)
    return ModelIdentity(asked, path.name, name, _model_version(name, sha), sha, str(path))


def _check_recorded_sha(weights_path: Path, meta: dict[str, Any], sha: str) -> None:
    recorded = meta.get("weights_sha256")
    if recorded and recorded != sha:
        raise CheckpointError(
            f"{weights_path} changed after it was written (sha256 {sha[:16]}..., its JSON records {recorded[:16]}...)"
            "; its recorded model version would be wrong. Re-run `human3r weights convert`."
        )


def verify_checkpoint(path: str | os.PathLike, *, preset: str | None = None) -> ModelIdentity:
    """Strictly check a weights file against the network it describes, without loading it into memory.

    Raises CheckpointError listing every mismatch; returns the identity (sha256 freshly computed) with its report.
    """
    p = Path(path)
    if _is_ours(p):
        weights_path, _ = _read_sidecar(p)
        with contextlib.suppress(OSError, ValueError):  # no cache yet, or an unreadable one
            _forget_sha(weights_path)
        _, identity = load_checkpoint(p)
        return identity
    ck = read_official_checkpoint(p)
    config = _config_from_constructor(ck.constructor, preset, p)
    report = check_state_dict(_build_empty(config), ck.state_dict, str(p))
    sha = file_sha256(p, use_cache=False)
    name = preset_of(config)
    return ModelIdentity(str(path), p.name, name, _model_version(name, sha), sha, str(p), report=report)


def _forget_sha(path: Path) -> None:
    """Drop a file's cached hash so the next file_sha256 reads it again."""
    cache_file = _cache_dir() / "sha256.json"
    cache = json.loads(cache_file.read_text())
    if cache.pop(str(path.resolve()), None) is not None:
        _atomic_write_text(cache_file, json.dumps(cache, indent=1, sort_keys=True))


def load_checkpoint(
    path: str | os.PathLike, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[nn.Module, ModelIdentity]:
    """Load our format (``.safetensors`` + ``.json``), strictly."""
    try:
        from safetensors.torch import load_file
    except ImportError as err:
        raise ImportError(f"loading .safetensors checkpoints needs safetensors: {_SAFETENSORS_PIP}") from err
    weights_path, meta = _read_sidecar(Path(path))
    try:
        config = Human3RConfig.from_dict(meta["config"])
    except (ConfigError, KeyError) as err:
        raise CheckpointError(f"{weights_path}: its JSON config is invalid: {err}. Re-run the conversion.") from err
    sha = file_sha256(weights_path)
    _check_recorded_sha(weights_path, meta, sha)
    try:
        sd = load_file(str(weights_path), device="cpu")
    except Exception as err:  # safetensors raises its own error types for truncated / foreign files
        raise CheckpointError(f"cannot read {weights_path}: {err}. Re-run the conversion.") from err
    for alias, canonical in (meta.get("aliases") or {}).items():
        if canonical in sd and alias not in sd:
            sd[alias] = sd[canonical]
    model = _build_empty(config)
    report = check_state_dict(model, sd, str(weights_path))
    _assign(model, sd, report)
    preset = preset_of(config)
    identity = ModelIdentity(
        str(path), weights_path.name, preset, meta.get("model_version") or _model_version(preset, sha), sha,
        str(weights_path), report=report,
    )
    return _finish(model, device, dtype), identity


def _load_official(
    path: Path, spec: str, preset: str | None, device: str | torch.device, dtype: torch.dtype
) -> tuple[nn.Module, ModelIdentity]:
    ck = read_official_checkpoint(path)
    config = _config_from_constructor(ck.constructor, preset, path)
    model = _build_empty(config)
    report = check_state_dict(model, ck.state_dict, str(path))
    _assign(model, ck.state_dict, report)
    sha = file_sha256(path)
    name = preset_of(config)
    identity = ModelIdentity(spec, path.name, name, _model_version(name, sha), sha, str(path), report=report)
    return _finish(model, device, dtype), identity


def _load_untrained(
    spec: str, preset: str | None, device: str | torch.device, dtype: torch.dtype
) -> tuple[nn.Module, ModelIdentity]:
    name, seed = _parse_untrained(spec, preset)
    from human3r.init import synthetic_init_

    model = synthetic_init_(_model_class()(Human3RConfig.preset(name)), seed)
    logger.warning("using UNTRAINED random weights (%s, seed %d): outputs are meaningless", name, seed)
    return _finish(model, device, dtype), _untrained_identity(spec, name, seed)


def _untrained_identity(spec: str, name: str, seed: int) -> ModelIdentity:
    return ModelIdentity(spec, f"untrained:{name}:{seed}", name, f"untrained-{name}-seed{seed}", is_untrained=True)


def load_model(
    spec: str, *, preset: str | None = None, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[nn.Module, ModelIdentity]:
    """Build Human3R and load weights named by ``spec``. Returns ``(model in eval mode, identity)``.

    spec:
      * a path: official ``.pth`` (reference training checkpoint) or our ``.safetensors`` (+ ``.json``);
      * ``auto``: ``$HUMAN3R_CHECKPOINT``, else the Hugging Face cache (``preset``'s file first);
      * ``hf:faneggg/human3r/<file>``: download (cached) with huggingface_hub;
      * ``untrained:<preset>[:seed]``: deterministic random weights, for smoke runs only.

    preset: for official files, the variant whose internals the constructor string does not spell out (needed
    for ``tiny``; the released variants follow from the string); for ``auto``, which file to prefer.
    """
    if not isinstance(spec, str) or not spec:
        raise CheckpointError(f"weights spec must be a non-empty string, got {spec!r}")
    asked = spec
    spec, origin = _expand_auto(spec)
    if spec.startswith("untrained"):
        model, identity = _load_untrained(spec, preset, device, dtype)
        return model, dataclasses.replace(identity, spec=asked)
    path = _resolve_path(spec, origin, preset, download=True)
    logger.info("loading Human3R weights %s (spec %r from %s)", path, spec, origin)
    if _is_ours(path):
        model, identity = load_checkpoint(path, device=device, dtype=dtype)
    else:
        model, identity = _load_official(path, spec, preset, device, dtype)
    return model, dataclasses.replace(identity, spec=asked)
