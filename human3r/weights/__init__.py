"""Checkpoints: which weights a spec names, reading them safely, loading them strictly, and their identity.

``model = load_model(spec)`` is the way in; ``model.identity`` says which weights it carries. The parts:

* :mod:`~human3r.weights.spec`: a spec (path, ``auto``, ``hf:<owner>/<repo>/<file>``, ``untrained:<preset>[:seed]``)
  -> a weights file or untrained weights; where the official files live, and downloading them.
* :mod:`~human3r.weights.official`: the official training pickle, read with ``torch.load(weights_only=True)``
  and an allow-list; its constructor string is parsed with ``ast``, never evaluated.
* :mod:`~human3r.weights.reference_config`: the reference constructor arguments -> :class:`Human3RConfig`.
* :mod:`~human3r.weights.safetensors_format`: our format, ``<name>.safetensors`` + ``<name>.json``.
* :mod:`~human3r.weights.keys`: reference key names (every file) <-> module key names, never-read keys, aliases.
* :mod:`~human3r.weights.strict`: build on the meta device, strict key/shape check, assignment without copies.
* :mod:`~human3r.weights.untrained`: deterministic synthetic weights (``untrained:tiny`` = the parity weights).
* :mod:`~human3r.weights.identity`: :class:`ModelIdentity`, the model version, cached file hashes.
* :mod:`~human3r.weights.load`: the composition (:func:`load_model`, :func:`inspect_weights`,
  :func:`verify_checkpoint`).

Every file stores tensors under the reference names (``enc_blocks.0...``), official and ours alike; the module's
own ``state_dict()`` uses its natural names (``encoder.enc_blocks.0...``) and the mapping happens at load time.
"""

from human3r.weights.identity import CACHE_ENV, ModelIdentity, file_sha256, preset_of
from human3r.weights.keys import UNUSED_KEY_PREFIXES, to_module_names, to_reference_names
from human3r.weights.load import inspect_weights, load_model, verify_checkpoint
from human3r.weights.official import OfficialCheckpoint, parse_constructor, read_official_checkpoint
from human3r.weights.reference_config import config_from_reference_kwargs
from human3r.weights.safetensors_format import save_checkpoint
from human3r.weights.spec import CHECKPOINT_ENV, DEFAULT_PRESET, HF_REPO, OFFICIAL_FILES, download_official
from human3r.weights.strict import LoadReport, build_on_meta, check_state_dict, load_state_dict

__all__ = [
    "CACHE_ENV",
    "CHECKPOINT_ENV",
    "DEFAULT_PRESET",
    "HF_REPO",
    "OFFICIAL_FILES",
    "UNUSED_KEY_PREFIXES",
    "LoadReport",
    "ModelIdentity",
    "OfficialCheckpoint",
    "build_on_meta",
    "check_state_dict",
    "config_from_reference_kwargs",
    "download_official",
    "file_sha256",
    "inspect_weights",
    "load_model",
    "load_state_dict",
    "parse_constructor",
    "preset_of",
    "read_official_checkpoint",
    "save_checkpoint",
    "to_module_names",
    "to_reference_names",
    "verify_checkpoint",
]
