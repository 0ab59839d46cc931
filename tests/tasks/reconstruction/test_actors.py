"""Ray actors on a real two-node cluster (one machine): spread, kill -9 mid-video, timeouts, exactly once."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from storage import delta
from storage import schema as S
from storage.catalog import open_catalog
from storage.fs import open_root
from storage.writer import read_failures, read_table
from tasks.identity import RunIdentity
from tasks.ops.sample import make_sample_video
from tasks.options import ClusterOptions, DecodeOptions, ModelOptions, ReconstructOptions

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, namespace="human3r-test", log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    short = [make_sample_video(d / f"short{i}.mp4", n_frames=8, width=160, height=96, seed=i) for i in range(4)]
    long = make_sample_video(d / "long.mp4", n_frames=240, width=160, height=96, seed=9)
    return {"short": short, "long": long}


def _pool(size=1, **kw):
    from tasks.reconstruction.actors import ActorPool

    cluster = ClusterOptions(num_actors=size, cpus_per_actor=1, torch_threads=1, **kw)
    return ActorPool(MODEL, cluster)


MODEL = ModelOptions(checkpoint="untrained:tiny")


def _identity(options=ReconstructOptions()):
    return RunIdentity.planned(MODEL, options)


IDENTITY = _identity()


def _run_all(pool, paths, root_uri):
    results = [None] * len(paths)

    def work(i):
        results[i] = pool.run(paths[i], root_uri, IDENTITY)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(paths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_two_nodes_share_an_archive(cluster, clips, tmp_path):
    pool = _pool(size=2)
    try:
        infos = pool.info()
        assert len({i["node_id"] for i in infos}) == 2  # one actor per node (1 CPU each)
        results = _run_all(pool, clips["short"], str(tmp_path / "ds"))
    finally:
        pool.shutdown()
    assert [r.status for r in results] == ["ok"] * 4
    assert len({r.node_id for r in results}) == 2
    with open_catalog(tmp_path / "ds") as cat:
        assert cat.query("SELECT count(DISTINCT video_id) FROM frames").column(0)[0].as_py() == 4
        assert cat.query("SELECT count(*) FROM frames").column(0)[0].as_py() == 4 * 8


def test_actor_killed_mid_video_is_replaced_and_video_lands_once(cluster, clips, tmp_path):
    root_uri = str(tmp_path / "ds")
    pool = _pool(size=1)
    try:
        pid = pool.info()[0]["pid"]
        box = {}
        worker = threading.Thread(target=lambda: box.update(r=pool.run(clips["long"], root_uri, IDENTITY)))
        worker.start()
        root = open_root(root_uri)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list((tmp_path / "ds").glob("frames/*.parquet")):
            time.sleep(0.05)  # wait until the actor is writing this video's first chunk
        os.kill(pid, signal.SIGKILL)
        worker.join(timeout=300)
        result = box["r"]
        assert pool.replacements == 1 and pool.info()[0]["pid"] != pid
    finally:
        pool.shutdown()
    assert result.status == "ok" and result.attempts == 2
    assert result.frames == 240
    runs = read_table(root, "runs").to_pylist()
    assert len(runs) == 1 and runs[0][S.N_FRAMES] == 240
    with open_catalog(root) as cat:
        assert cat.query("SELECT count(*), count(DISTINCT frame_idx) FROM frames").to_pylist()[0] == {
            "count_star()": 240, "count(DISTINCT frame_idx)": 240}
    assert read_failures(root).num_rows == 0
    from storage.maintenance import vacuum

    vacuum(root, min_age_s=0)  # the killed attempt left a file no table references: now removed
    live = {f.rsplit("/", 1)[-1] for f in delta.live_files(delta.open_table(root, S.FRAMES))}
    assert {p.name for p in (tmp_path / "ds").glob("frames/*.parquet")} == live


def test_video_over_its_time_limit_fails_and_the_pool_goes_on(cluster, clips, tmp_path):
    root_uri = str(tmp_path / "ds")
    pool = _pool(size=1, video_timeout_s=1.0)
    try:
        pool.info()
        slow = pool.run(clips["long"], root_uri, IDENTITY)
        pool.video_timeout_s = 120
        short = _identity(ReconstructOptions(decode=DecodeOptions(max_frames=2)))
        after = pool.run(clips["short"][0], root_uri, short)
    finally:
        pool.shutdown()
    assert slow.status == "failed" and (slow.stage, slow.error_type) == ("timeout", "VideoTimeout")
    assert after.status == "ok"
    failures = read_failures(open_root(root_uri)).to_pylist()
    assert [(f["source_uri"], f["stage"], f["error_type"]) for f in failures] == [
        (clips["long"], "timeout", "VideoTimeout")]


def test_an_actor_takes_several_videos_at_once(cluster, clips, tmp_path):
    """videos_per_actor=2: one replica reconstructs two videos concurrently, their frames in shared forwards."""
    pool = _pool(size=1, videos_per_actor=2)
    try:
        results = _run_all(pool, clips["short"][:2], str(tmp_path / "ds"))
        info = pool.info()[0]
    finally:
        pool.shutdown()
    assert [(r.status, r.frames) for r in results] == [("ok", 8), ("ok", 8)]
    assert info["calls"] == 2 and info["batched_forwards"] < 2 * 8  # 16 steps ran in fewer forwards
