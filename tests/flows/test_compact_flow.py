"""The compact-dataset flow under the Prefect test harness: dead rows and small files go, visible data stays."""

from __future__ import annotations

import pyarrow as pa

from storage import delta as D
from storage import schema as S
from storage.fs import open_root
from storage.synthetic import SynthSpec, synth_video
from storage.writer import read_table


def test_compaction_keeps_the_live_rows_and_merges_files(prefect_harness, tmp_path):
    import datetime as dt

    from flows.compact import compact_dataset
    from storage.writer import RunInfo, write_video

    root = open_root(tmp_path / "ds")
    spec = SynthSpec(n_frames=12, points_per_frame=4)
    for i in (0, 1, 2, 0):  # four runs, one of them replacing video 0
        v = synth_video(0, i, spec)
        run = RunInfo(model_version="m", preset="tiny", params={}, started_at=dt.datetime.now(dt.UTC),
                      source_uri=v["videos"][S.SOURCE_URI][0])
        write_video(root, v["video_id"], run=run, videos=v["videos"], frames=v["frames"], humans=v["humans"],
                    points=v["points"])
    before = {t: read_table(root, t) for t in ("videos", "frames", "points")}
    assert len(D.live_files(D.open_table(root, S.FRAMES))) == 4

    out = compact_dataset(dataset=str(root.base), min_age_s=0)

    assert out["rows_deleted"]["frames"] == 12 and out["files"]["frames"] == "4 -> 1"
    assert len(D.live_files(D.open_table(root, S.FRAMES))) == 1
    for table, rows in before.items():  # the same rows (order within a frame is not part of the contract)
        key = [(c, "ascending") for c in rows.column_names if not pa.types.is_list(rows.schema.field(c).type)]
        assert read_table(root, table).sort_by(key).equals(rows.sort_by(key)), table
