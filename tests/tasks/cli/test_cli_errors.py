"""A corpus of bad invocations: each gives one line on stderr, no traceback, and the right exit code (2 = usage:
nothing was done; 1 = some videos failed)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def places(tmp_path_factory, sample_video, make_video):
    d = tmp_path_factory.mktemp("places")
    (d / "empty").mkdir()
    (d / "empty" / "notes.txt").write_text("no videos here")
    (d / "a_file").write_text("not a folder")
    thin = make_video(d / "thin.mkv", [np.zeros((16, 4000, 3), np.uint8)] * 2, codec="ffv1", pix_fmt="bgr0")
    return {"dir": d, "video": sample_video, "thin": thin}


def _reconstruct(places, *extra):
    return ("reconstruct", places["video"], "--out", places["dir"] / "ds", "--checkpoint", "untrained:tiny", *extra)


USAGE_ERRORS = {  # name -> (argv builder, text the one line must contain)
    "stride zero": (lambda p: _reconstruct(p, "--stride", "0"), "--stride: must be greater than or equal to 1"),
    "stride not a number": (lambda p: _reconstruct(p, "--stride", "two"), "'two' is not a valid integer"),
    "negative points": (lambda p: _reconstruct(p, "--points-per-frame", "-1"), "--points-per-frame"),
    "max frames zero": (lambda p: _reconstruct(p, "--max-frames", "0"), "--max-frames"),
    "reset interval zero": (lambda p: _reconstruct(p, "--reset-interval", "0"), "--reset-interval"),
    "end before start": (lambda p: _reconstruct(p, "--start", "5", "--end", "2"), "must come after the start"),
    "unsupported root scheme": (
        lambda p: ("reconstruct", p["video"], "--out", "gs://bucket/archive", "--checkpoint", "untrained:tiny"),
        "unsupported dataset root 'gs://bucket/archive'"),
    "root is a file": (
        lambda p: ("reconstruct", p["video"], "--out", p["dir"] / "a_file", "--checkpoint", "untrained:tiny"),
        "cannot create a dataset"),
    "folder without videos": (
        lambda p: ("reconstruct", p["dir"] / "empty", "--out", p["dir"] / "ds", "--checkpoint", "untrained:tiny"),
        "holds no video files"),
    "glob matching nothing": (
        lambda p: ("reconstruct", str(p["dir"] / "*.webm"), "--out", p["dir"] / "ds"), "matches no file"),
    "missing checkpoint": (
        lambda p: ("reconstruct", p["video"], "--out", p["dir"] / "ds", "--checkpoint", p["dir"] / "none.pth"),
        "does not exist"),
    "unknown untrained preset": (
        lambda p: ("reconstruct", p["video"], "--out", p["dir"] / "ds", "--checkpoint", "untrained:huge"),
        "untrained:<preset>"),
    "cuda without a gpu": (lambda p: _reconstruct(p, "--device", "cuda"), "CUDA is not available"),
    "not a device": (lambda p: _reconstruct(p, "--device", "banana"), "not a device"),
    "missing body model": (lambda p: _reconstruct(p, "--body-model", p["dir"] / "smplx"), "SMPL-X body model"),
    "unknown option": (lambda p: _reconstruct(p, "--strid", "2"), "No such option"),
    "query a missing dataset": (lambda p: ("query", "--root", p["dir"] / "nothing", "SELECT 1"), "no dataset at"),
    "query a file as root": (lambda p: ("query", "--root", p["dir"] / "a_file", "SELECT 1"),
                             "cannot read the dataset"),
    "query an ftp root": (lambda p: ("query", "--root", "ftp://host/x", "SELECT 1"), "unsupported dataset root"),
    "vacuum a missing dataset": (lambda p: ("vacuum", "--root", p["dir"] / "nothing"), "no dataset at"),
    "compact a missing dataset": (lambda p: ("compact", "--root", p["dir"] / "nothing"), "no dataset at"),
    "migrate a missing dataset": (lambda p: ("migrate", "--root", p["dir"] / "nothing"), "no dataset at"),
    "migrate to an unsupported root": (lambda p: ("migrate", "--root", p["dir"] / "nothing", "--out", "gs://b/x"),
                                       "unsupported dataset root"),
    "synth zero videos": (lambda p: ("synth", "--root", p["dir"] / "s", "--videos", "0"), "--videos"),
    "bad weights spec": (lambda p: ("weights", "resolve", "untrained:huge"), "untrained:<preset>"),
}


@pytest.mark.parametrize("name", USAGE_ERRORS)
def test_usage_errors_are_one_line_with_exit_2(name, places, human3r_cli):
    argv, needle = USAGE_ERRORS[name]
    result = human3r_cli(*argv(places), code=2)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert needle in result.stderr, result.stderr
    assert not (places["dir"] / "ds").exists()  # nothing was written


def test_unprocessable_frame_size_is_refused_before_the_model_loads(places, human3r_cli, monkeypatch):
    import human3r.weights

    def no_loading(*args, **kwargs):
        raise AssertionError("the model must not be loaded when no video can be processed")

    monkeypatch.setattr(human3r.weights, "load_model", no_loading)
    result = human3r_cli("reconstruct", places["thin"], "--out", places["dir"] / "thin-ds", "--checkpoint",
                         "untrained:tiny", code=1)
    assert "Traceback" not in result.stderr
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed")]
    assert len(failed) == 1 and "4000x16 frames cannot be processed" in failed[0] and "at probe" in failed[0]
    assert "0 reconstructed, 0 skipped, 1 failed" in result.stdout
