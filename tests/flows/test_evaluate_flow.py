"""The evaluate-model flow end to end under the Prefect test harness: sequences on the Ray actor pool, rows in the
dataset, averages, the artifacts; a second run finds everything done and starts no actor."""

from __future__ import annotations

import pytest

from storage.catalog import open_catalog
from tasks.evaluation.options import EvalOptions
from tasks.options import ClusterOptions, ModelOptions

pytest.importorskip("ray")


def test_evaluate_model_on_the_actor_pool_then_nothing_left(prefect_harness, tmp_path):
    from flows.evaluate import evaluate_model
    from tasks.evaluation.benchmarks.synthetic import write_mini_tum

    names = ("rgbd_dataset_freiburg3_walking_xyz", "rgbd_dataset_freiburg3_sitting_static")
    write_mini_tum(tmp_path / "tum", n_frames=6, names=names)
    kw = dict(benchmark="tum_50", data=str(tmp_path / "tum"), dataset=str(tmp_path / "ds"),
              model=ModelOptions(checkpoint="untrained:tiny"), options=EvalOptions(protocol="both"),
              cluster=ClusterOptions(torch_threads=1))
    first = evaluate_model(**kw)
    assert first.counts == {"ok": 2, "skipped": 0, "failed": 0}, first.rows
    assert {r["sequence"] for r in first.rows} == set(names) and {r["attempts"] for r in first.rows} == {1}
    assert any("average over 2 sequence(s) written" in line for line in first.averages)
    with open_catalog(tmp_path / "ds") as cat:
        rows = cat.query("SELECT sequence, protocol, metric, status FROM evaluations").to_pylist()
        host = cat.query("SELECT DISTINCT host FROM evaluations WHERE sequence IS NOT NULL").to_pylist()
    assert len(rows) == 2 * 3 * 3 and {r["status"] for r in rows} == {"ok"}  # (2 sequences + average) x 3 x 2
    assert len(host) == 1

    second = evaluate_model(**kw)
    assert second.counts == {"ok": 0, "skipped": 2, "failed": 0}
    assert all("unchanged" in line for line in second.averages)
