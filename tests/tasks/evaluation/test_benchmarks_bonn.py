"""Bonn: the reference's [30:30+N] subsets, prepared and raw layouts; depth PNGs (the metrics' reader) vs the pack."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from benchmark_fixtures import FORMATS, PACK
from PIL import Image

from tasks.evaluation.benchmarks import load_benchmark
from tasks.evaluation.benchmarks.bonn import SEQUENCES
from tasks.evaluation.benchmarks.errors import BenchmarkFileError, BenchmarkLayoutError
from tasks.evaluation.metrics.bonn import read_bonn_depth

SAMPLE = FORMATS / "bonn" / "1548266470.17153.png"


def _png16(path, array):
    Image.fromarray(np.asarray(array, np.uint16)).save(path)
    return path


def test_depth_read_equals_the_reference(parsed):
    with Image.open(SAMPLE) as im:
        assert im.mode == "I;16"
        np.testing.assert_array_equal(np.asarray(im), parsed["bonn__png_uint16"])
    depth = read_bonn_depth(SAMPLE)
    assert depth.dtype == np.float64
    np.testing.assert_array_equal(depth, parsed["bonn__depth_read"])
    assert (depth[parsed["bonn__png_uint16"] == 0] == -1.0).all()


def test_prepared_layout_reads_the_packs_tree(tmp_path):
    """depth/bonn/long_bonn as eval_depth.py reads it, with rgb_110/ and groundtruth_110.txt added."""
    root = tmp_path / "long_bonn"
    shutil.copytree(PACK / "depth" / "bonn" / "long_bonn", root)
    rng = np.random.default_rng(0)
    for seq_dir in root.iterdir():
        (seq_dir / "rgb_110").mkdir()
        for png in (seq_dir / "depth_110").iterdir():
            (seq_dir / "rgb_110" / png.name).write_bytes(b"")
        gt = np.c_[np.arange(5) / 30.0, rng.normal(size=(5, 3)), np.tile([0, 0, 0, 1.0], (5, 1))]
        np.savetxt(seq_dir / "groundtruth_110.txt", gt)  # as the reference's preparation writes it
    bench = load_benchmark("bonn", root)
    assert [s.name for s in bench.sequences] == ["balloon2", "crowd2", "person_tracking2"]
    assert bench.missing == ("crowd3", "synchronous")
    seq = bench.sequences[0]
    assert len(seq) == 5 and [p.parent.name for p in seq.depths] == ["depth_110"] * 5
    assert [p.name for p in seq.depths] == [p.name for p in seq.images]
    assert list(seq.frame_ids) == [30, 31, 32, 33, 34]
    np.testing.assert_array_equal(seq.trajectory.quat_wxyz[0], [1, 0, 0, 0])  # TUM order on disk, w first here
    assert read_bonn_depth(seq.depths[0]).shape == (96, 128)


def test_raw_layout_is_cut_at_30_to_30_plus_n(tmp_path):
    seq_dir = tmp_path / "rgbd_bonn_dataset" / "rgbd_bonn_crowd2"
    (seq_dir / "rgb").mkdir(parents=True)
    (seq_dir / "depth").mkdir()
    stamps = 1548266469.0 + np.arange(200) / 30
    for t in stamps[:190]:  # fewer depth frames than rgb frames
        (seq_dir / "rgb" / f"{t:.6f}.png").write_bytes(b"")
    png = _png16(tmp_path / "d.png", np.full((2, 2), 3000)).read_bytes()
    for t in stamps[:185]:
        (seq_dir / "depth" / f"{t:.6f}.png").write_bytes(png)
    gt = np.c_[stamps, np.zeros((200, 3)), np.tile([0, 0, 0, 1.0], (200, 1))]
    np.savetxt(seq_dir / "groundtruth.txt", gt, header="timestamp tx ty tz qx qy qz qw")
    bonn = load_benchmark("bonn", tmp_path / "rgbd_bonn_dataset").sequences[0]
    assert len(bonn) == 110 and bonn.images[0].name == f"{stamps[30]:.6f}.png"
    assert bonn.depths[-1].name == f"{stamps[139]:.6f}.png" and bonn.trajectory.stamps[0] == stamps[30]
    long = load_benchmark("bonn_200", tmp_path / "rgbd_bonn_dataset").sequences[0]
    assert len(long) == 155  # clipped to the shortest modality: 185 depth frames - 30
    assert list(SEQUENCES) == ["balloon2", "crowd2", "crowd3", "person_tracking2", "synchronous"]


def test_layout_errors(tmp_path):
    with pytest.raises(BenchmarkLayoutError, match="holds none of the Bonn sequences"):
        load_benchmark("bonn", tmp_path)
    seq_dir = tmp_path / "rgbd_bonn_balloon2"
    (seq_dir / "rgb_110").mkdir(parents=True)
    (seq_dir / "depth_110").mkdir()
    (seq_dir / "rgb_110" / "a.png").write_bytes(b"")
    with pytest.raises(BenchmarkFileError, match="rgb_110/ has 1 images, depth_110/ 0"):
        load_benchmark("bonn", tmp_path)
