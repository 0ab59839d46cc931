"""Identity: model versions, the configuration known before loading, and the cached file hash."""

from __future__ import annotations

import hashlib
import json
import os

import human3r
from human3r.config import Human3RConfig
from human3r.weights import file_sha256, inspect_weights, preset_of


def test_inspect_weights_gives_identity_and_config_without_building(official, monkeypatch):
    import human3r.weights.load as load

    def no_build(*args, **kwargs):
        raise AssertionError("inspect_weights must not build the network")

    monkeypatch.setattr(load, "build_on_meta", no_build)
    path, _ = official
    identity = inspect_weights(str(path), preset="tiny")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (identity.preset, identity.sha256, identity.model_version) == ("tiny", sha, f"human3r-tiny-{sha[:16]}")
    assert identity.config.image_size == 128 and identity.report is None
    untrained = inspect_weights("untrained:672S:2")
    assert untrained.model_version == "untrained-672S-seed2" and untrained.config == Human3RConfig.preset("672S")


def test_identity_of_load_model_equals_inspect_weights(official):
    path, _ = official
    loaded = human3r.load_model(str(path), preset="tiny").identity
    assert loaded == inspect_weights(str(path), preset="tiny")  # the report is not compared
    assert loaded.report is not None


def test_to_dict_is_plain_values(official):
    d = inspect_weights(str(official[0]), preset="tiny").to_dict()
    assert list(d) == ["spec", "name", "preset", "model_version", "sha256", "path", "is_untrained"]
    json.dumps(d)


def test_preset_of_ignores_the_name():
    assert preset_of(Human3RConfig.preset("672B").replace(name="custom")) == "672B"
    assert preset_of(Human3RConfig.preset("tiny").replace(image_size=256)) == "custom"


def test_sha256_streamed_and_cached(tmp_path):
    f = tmp_path / "blob.bin"
    f.write_bytes(os.urandom(3 << 20) + b"tail")
    expected = hashlib.sha256(f.read_bytes()).hexdigest()
    assert file_sha256(f) == expected
    cache = json.loads((tmp_path / "h3r-cache" / "sha256.json").read_text())
    assert cache[str(f.resolve())]["sha256"] == expected
    cache[str(f.resolve())]["sha256"] = "cached"  # a cache hit does not read the file again
    (tmp_path / "h3r-cache" / "sha256.json").write_text(json.dumps(cache))
    assert file_sha256(f) == "cached"
    assert file_sha256(f, use_cache=False) == expected
    f.write_bytes(b"changed")  # new size / mtime -> recomputed
    assert file_sha256(f) == hashlib.sha256(b"changed").hexdigest()
