"""The fine-tuning run's key (and so its folder and the model's model_version) follows the training data's content:
a label build rebuilt in the same folder from other rows is another run, not a resumption of the old one."""

from __future__ import annotations

import json

from tasks.training.config import TrainOptions
from tasks.training.plan import run_key


def _build(folder, labels: bytes, created_at: str) -> None:
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    (folder / "build.json").write_text(json.dumps({"created_at": created_at, "counts": {"clips": 1}}))
    (folder / "clips.parquet").write_bytes(b"clips")
    (folder / "labels" / "train.parquet").write_bytes(labels)


def test_a_rebuilt_label_build_is_another_run_and_the_same_build_the_same_run(tmp_path):
    build = tmp_path / "labels"
    _build(build, b"rows of the first build", "2026-12-01T00:00:00+00:00")
    options = TrainOptions.for_labels(build, base_checkpoint="untrained:tiny", steps=3)
    first = run_key(options, "base")
    _build(build, b"rows of the first build", "2026-12-02T00:00:00+00:00")  # the same rows, built again later
    assert run_key(options, "base") == first
    _build(build, b"rows of another selection", "2026-12-03T00:00:00+00:00")
    assert run_key(options, "base") != first
    assert run_key(TrainOptions.for_labels(build, base_checkpoint="untrained:tiny", steps=4), "base") != \
        run_key(options, "base")
