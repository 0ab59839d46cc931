"""The dataset marker, parameter identity, run ids and the Delta table properties of the contract."""

from __future__ import annotations

import json
import time

import pytest

from storage import dataset
from storage import delta as D
from storage import schema as S
from storage.errors import DatasetNotFoundError, RootError, SchemaMismatchError
from storage.fs import open_root


def test_marker_is_created_once_and_checked(root):
    dataset.init_dataset(root)
    marker = dataset.check_dataset(root)
    assert (marker["schema_version"], marker["format"], marker["producer"]) == (S.SCHEMA_VERSION, "delta", S.PRODUCER)
    created = marker["created_at"]
    dataset.init_dataset(root)  # a second writer keeps the first marker
    assert dataset.check_dataset(root)["created_at"] == created


@pytest.mark.parametrize("content, error, needle", [
    (json.dumps({"schema_version": S.SCHEMA_VERSION + 1}), SchemaMismatchError, "schema version"),
    (json.dumps({"schema_version": 1}), SchemaMismatchError, "human3r migrate --root"),
    ("{not json", SchemaMismatchError, "not valid JSON"),
    (json.dumps([1, 2]), SchemaMismatchError, "not a dataset marker"),
])
def test_bad_markers_are_refused_with_a_reason(root, content, error, needle):
    dataset.init_dataset(root)
    root.local_path(S.DATASET_FILE).write_text(content)
    with pytest.raises(error, match=needle):
        dataset.check_dataset(root)
    with pytest.raises(error):  # the writer refuses as well
        dataset.init_dataset(root)


def test_missing_and_unreadable_roots(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="no dataset at"):
        dataset.check_dataset(open_root(tmp_path / "none"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetNotFoundError, match="cannot read the dataset"):
        dataset.check_dataset(open_root(tmp_path / "file"))
    with pytest.raises(RootError, match="cannot create a dataset"):
        dataset.init_dataset(open_root(tmp_path / "file"))


def test_params_hash_is_canonical():
    a = dataset.params_hash({"decode": {"stride": 2, "max_frames": None}, "use_ttt3r": False})
    b = dataset.params_hash({"use_ttt3r": False, "decode": {"max_frames": None, "stride": 2}})
    assert a == b and len(a) == 16
    assert dataset.params_hash({"decode": {"stride": 3, "max_frames": None}, "use_ttt3r": False}) != a


def test_run_ids_sort_by_start_time_and_tell_it():
    ids = [S.new_run_id() for _ in range(50)]
    assert len(set(ids)) == 50 and all(len(i) == 32 for i in ids)
    time.sleep(0.002)
    later = S.new_run_id()
    assert later > max(ids)
    assert int(later[:14], 16) / 1e6 == pytest.approx(time.time(), abs=5)  # 14 hex of microseconds since the epoch


def test_tables_carry_the_contract(root):
    for name in S.STORED_TABLES:
        dt = D.ensure_table(root, S.TABLES[name])
        config = dt.metadata().configuration
        assert config[S.SCHEMA_VERSION_PROPERTY] == str(S.SCHEMA_VERSION)
        assert config["delta.dataSkippingStatsColumns"] == ",".join(S.TABLES[name].stats)
        assert config["delta.checkpointInterval"] == "100"
        names = [f.name for f in dt.schema().fields]
        assert names == S.TABLES[name].column_names, name
    assert D.ensure_table(root, S.RUNS).version() == 0  # opening again creates nothing
    assert "videos" not in S.STORED_TABLES and not root.local_path("videos").exists()


def test_rewording_a_column_doc_does_not_lock_existing_tables(root, monkeypatch):
    """Docs live in schema.py, not in the Delta schema: a new release may reword them and still append."""
    import dataclasses

    from storage.synthetic import SynthSpec, write_synthetic_dataset
    from storage.writer import read_table

    write_synthetic_dataset(root, 1, SynthSpec(n_frames=5, points_per_frame=4))
    reworded = tuple(dataclasses.replace(c, doc=c.doc + " (reworded)") for c in S.FRAMES.columns)
    monkeypatch.setitem(S.TABLES, "frames", dataclasses.replace(S.FRAMES, columns=reworded))
    write_synthetic_dataset(root, 2, SynthSpec(n_frames=5, points_per_frame=4), seed=1)
    assert read_table(root, "frames").num_rows == 15
