"""Which weights a spec names: a path, ``auto``, ``hf:<owner>/<repo>/<file>`` or ``untrained:<preset>[:seed]``.

* a path: an official ``.pth`` (reference training checkpoint) or our ``.safetensors`` (+ ``.json`` next to it);
* ``auto``: ``$HUMAN3R_CHECKPOINT`` (a path or any spec but ``auto``), else the first official file found in the
  Hugging Face cache (the preset's file first);
* ``hf:<owner>/<repo>/<file>``: a Hugging Face file, downloaded (and cached) with huggingface_hub;
* ``untrained:<preset>[:seed]``: deterministic random weights (:mod:`human3r.weights.untrained`), smoke runs only.

Also where the official files live (``HF_REPO``, ``OFFICIAL_FILES``, ...), the hint that says how to get them, and
:func:`download_official`. Nothing here reads a weights file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from human3r.config import Human3RConfig
from human3r.errors import CheckpointError

__all__ = [
    "CHECKPOINT_ENV",
    "DEFAULT_PRESET",
    "HF_REPO",
    "OFFICIAL_FILES",
    "README_FILE",
    "ResolvedSpec",
    "download_official",
    "hf_cache_dir",
    "is_safetensors_path",
    "resolve_spec",
    "weights_hint",
]

HF_REPO = "faneggg/human3r"
CHECKPOINT_ENV = "HUMAN3R_CHECKPOINT"  # path or spec used by `auto`
DEFAULT_PRESET = "896L"
OFFICIAL_FILES = {  # preset -> file in faneggg/human3r
    "896L": "human3r_896L.pth",
    "672L": "human3r_672L.pth",
    "672B": "human3r_672B.pth",
    "672S": "human3r_672S.pth",
}
README_FILE = "human3r.pth"  # the name the upstream README downloads (the 896L model)
_HF_PIP = "pip install 'huggingface_hub>=0.30,<3'"


def weights_hint(preset: str | None = None) -> str:
    """The sentence that says how to get the weights (appended to every 'not found' error)."""
    name = OFFICIAL_FILES.get(preset or DEFAULT_PRESET, OFFICIAL_FILES[DEFAULT_PRESET])
    return (
        f"Get the weights with `huggingface-cli download {HF_REPO} {name}` (or `human3r weights download {name}`), "
        f"or set {CHECKPOINT_ENV}=/path/to/{name}; for a smoke run without weights use `untrained:<preset>`."
    )


@dataclass(frozen=True)
class ResolvedSpec:
    """What a spec names. Exactly one of ``path`` (a weights file) and ``untrained`` (preset, seed) is set."""

    spec: str  # as asked (`auto`, a path, `hf:...`, `untrained:...`)
    origin: str  # where the effective spec came from: `argument`, `$HUMAN3R_CHECKPOINT` or `auto`
    path: Path | None = None  # the weights file (official .pth, or our .safetensors / .json)
    untrained: tuple[str, int] | None = None  # (preset, seed) of untrained weights

    @property
    def is_safetensors(self) -> bool:
        """Our format (``.safetensors`` + ``.json``) rather than an official pickle."""
        return self.path is not None and is_safetensors_path(self.path)


def is_safetensors_path(path: str | os.PathLike) -> bool:
    """A path of our format (its ``.safetensors`` or its ``.json``); anything else is read as an official pickle."""
    return Path(path).suffix in (".safetensors", ".json")


def resolve_spec(spec: str, *, preset: str | None = None, download: bool = False) -> ResolvedSpec:
    """Resolve ``spec`` to a weights file or to untrained weights (see module docstring).

    ``preset`` picks the file ``auto`` prefers and the default of ``untrained:``; ``download`` lets ``hf:`` specs
    that are not cached yet be downloaded (otherwise only the cache is read).
    """
    if not isinstance(spec, str) or not spec:
        raise CheckpointError(f"weights spec must be a non-empty string, got {spec!r}")
    effective, origin = _expand_auto(spec)
    if effective.startswith("untrained"):
        return ResolvedSpec(spec, origin, untrained=_parse_untrained(effective, preset))
    return ResolvedSpec(spec, origin, path=_resolve_path(effective, origin, preset, download))


def _expand_auto(spec: str) -> tuple[str, str]:
    """`auto` -> $HUMAN3R_CHECKPOINT when set (any spec but `auto`); other specs unchanged. Returns (spec, origin)."""
    if spec != "auto":
        return spec, "argument"
    env = os.environ.get(CHECKPOINT_ENV, "").strip()
    if env == "auto":
        raise CheckpointError(f"{CHECKPOINT_ENV}=auto would resolve to itself; set it to a path or an hf:... spec")
    return (env, f"${CHECKPOINT_ENV}") if env else ("auto", "auto")


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
        found = _import_hf().try_to_load_from_cache(repo, name, cache_dir=hf_cache_dir())
        if not (isinstance(found, str) and os.path.isfile(found)):
            raise CheckpointError(f"{spec} is not in the Hugging Face cache {hf_cache_dir()}. {weights_hint(preset)}")
        return Path(found)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise CheckpointError(f"weights file {path} (from {origin}) does not exist. {weights_hint(preset)}")
    return path


# ------------------------------------------------------------------------------------------------------------------
# Hugging Face
# ------------------------------------------------------------------------------------------------------------------


def hf_cache_dir() -> str:
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


def _auto_path(preset: str | None) -> Path:
    """`auto` without $HUMAN3R_CHECKPOINT: the first official file in the Hugging Face cache (preset's first)."""
    hub = _import_hf()
    cache = hf_cache_dir()
    names = _candidate_files(preset)
    for name in names:
        found = hub.try_to_load_from_cache(HF_REPO, name, cache_dir=cache)
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    raise CheckpointError(
        f"no Human3R weights found for `auto`: ${CHECKPOINT_ENV} is not set and the Hugging Face cache {cache} "
        f"holds none of {names} from {HF_REPO}. {weights_hint(preset)}"
    )


def download_official(filename: str | None = None, *, preset: str | None = None, repo: str = HF_REPO) -> Path:
    """Fetch an official file with huggingface_hub (cached); offline or missing -> CheckpointError with next steps."""
    hub = _import_hf()
    name = filename or OFFICIAL_FILES.get(preset or DEFAULT_PRESET, OFFICIAL_FILES[DEFAULT_PRESET])
    try:
        return Path(hub.hf_hub_download(repo_id=repo, filename=name, cache_dir=hf_cache_dir()))
    except Exception as err:  # offline, no such file, gated repo, HTTP errors: all need the same advice
        raise CheckpointError(
            f"could not download {name} from Hugging Face repo {repo}: {type(err).__name__}: {err}. "
            f"If this machine is offline, download it elsewhere with `huggingface-cli download {repo} {name}` and "
            f"copy the file here, then set {CHECKPOINT_ENV}=/path/to/{name} (or pass the path)."
        ) from err
