"""The evaluations table: its visibility rule (every row of the latest run of a key), plain Delta readers, datasets
written before it existed, and the paper's tables built from it (storage.results)."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from storage import schema as S
from storage.catalog import live_results, open_catalog
from storage.results import OFFICIAL, paper_tables, sequence_values, to_markdown
from storage.synthetic import SynthSpec, synth_evaluation, write_synthetic_dataset
from storage.writer import write_rows

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _write(root, **kw):
    rows = synth_evaluation(**kw)
    write_rows(root, S.EVALUATIONS.name, rows, txn=rows[S.RUN_ID][0])
    return rows


def _live(root, sql="SELECT * FROM evaluations"):
    with open_catalog(root) as cat:
        return cat.query(sql).to_pylist()


def test_the_latest_run_of_a_key_is_live_and_only_its_rows(root):
    first = _write(root, seed=0, evaluated_at=T0)
    _write(root, seed=1, evaluated_at=T0 + dt.timedelta(hours=1), sequences=("P0/09_outdoor_walk",),
           with_average=False)  # that sequence evaluated again: its new rows replace its old ones, nothing else
    _write(root, seed=2, evaluated_at=T0, protocol="corrected")  # another protocol: another key
    _write(root, seed=3, evaluated_at=T0, precision="bfloat16")  # another precision: another key
    rows = _live(root)
    walk = [r for r in rows if r[S.SEQUENCE] == "P0/09_outdoor_walk" and r[S.PROTOCOL] == "reference"
            and r[S.PRECISION] == "float32"]
    assert {r[S.EVALUATED_AT] for r in walk} == {T0 + dt.timedelta(hours=1)} and len(walk) == 6
    chair = [r for r in rows if r[S.SEQUENCE] == "P7/57_outdoor_rock_chair" and r[S.PROTOCOL] == "reference"
             and r[S.PRECISION] == "float32"]
    assert {r[S.RUN_ID] for r in chair} == {first[S.RUN_ID][0]} and len(chair) == 6
    assert len(rows) == 3 * 3 * 6  # 3 keys x (2 sequences + the average) x 6 metrics
    assert live_results(root).num_rows == len(rows)  # one table read gives the catalog's view
    with open_catalog(root) as cat:  # every stored row stays reachable (the history of re-runs)
        assert cat.query("SELECT count(*) FROM evaluations_all").column(0)[0].as_py() == len(rows) + 6


def test_a_failed_evaluation_shows_until_a_later_one_succeeds(root):
    _write(root, status="failed", evaluated_at=T0)
    rows = _live(root)
    assert {r[S.STATUS] for r in rows} == {"failed"} and len(rows) == 2 and all(r[S.METRIC] is None for r in rows)
    _write(root, evaluated_at=T0 + dt.timedelta(minutes=5))
    assert {r[S.STATUS] for r in _live(root)} == {"ok"}
    ties = synth_evaluation(evaluated_at=T0 + dt.timedelta(minutes=5), run_id="f" * 32, seed=9)
    write_rows(root, S.EVALUATIONS.name, ties, txn="tie")  # same time: the larger run id wins
    assert {r[S.RUN_ID] for r in _live(root)} == {"f" * 32}


def test_a_dataset_without_evaluations_opens_and_the_view_is_empty(root):
    write_synthetic_dataset(root, 1, SynthSpec(n_frames=3, points_per_frame=2))
    assert not (root.local_path(S.EVALUATIONS.name)).exists()
    assert _live(root) == [] and live_results(root).num_rows == 0
    assert _live(root, "SELECT count(*) AS n FROM videos")[0]["n"] == 1


def test_paper_tables_official_figures_models_and_protocol_difference(root):
    _write(root, seed=0, protocol="reference")
    _write(root, seed=1, protocol="corrected")
    _write(root, seed=2, model_version="human3r-672S-fedcba9876543210", precision="bfloat16",
           benchmark="tum", sequences=("walking_xyz",), metrics={"ate_m": ("m", 0.05), "rpe_trans_m": ("m", 0.01),
                                                                  "rpe_rot_deg": ("deg", 0.4)})
    live = live_results(root)
    tables = {t.title: t for t in paper_tables(live)}
    glob = tables["Global human motion"]
    labels = [r.label for r in glob.rows]
    assert labels[:5] == ["official ViT-S/672", "official ViT-B/672", "official ViT-L/672", "official ViT-L/896",
                          "paper ViT-L/896"]
    col = [c.metric for c in glob.columns].index("w_mpjpe100")
    assert glob.rows[3].cells[col].value == 267.9 and glob.rows[3].kind == "official"
    ref = next(r for r in glob.rows if r.kind == "model" and r.key.protocol == "reference")
    cor = next(r for r in glob.rows if r.kind == "model" and r.key.protocol == "corrected")
    diff = next(r for r in glob.rows if r.kind == "difference")
    avg = {r[S.METRIC]: r[S.VALUE] for r in live.to_pylist() if r[S.SEQUENCE] is None and r[S.PROTOCOL] == "reference"
           and r[S.BENCHMARK] == "emdb2"}
    assert ref.cells[col].value == avg["w_mpjpe100"]
    assert diff.cells[col].value == pytest.approx(cor.cells[col].value - ref.cells[col].value)
    assert ref.cells[[c.benchmark for c in glob.columns].index("rich")].value is None  # not evaluated: —
    camera = tables["Camera pose"]  # no official TUM figures: only the evaluated columns
    assert [c.metric for c in camera.columns] == ["ate_m", "rpe_trans_m", "rpe_rot_deg"]
    assert [r.label for r in camera.rows] == ["human3r-672S-fedcba9876543210 · bfloat16 · reference"]
    text = to_markdown(paper_tables(live))
    assert "EMDB-2 W-MPJPE (mm)" in text and "EMDB-2 RTE (%)" in text and "TUM-dynamics ATE (m)" in text
    assert "corrected − reference" in text and "| official ViT-L/896 | 44.1 | 71.2 | 84.9 |" in text
    assert "Video depth" not in text  # nothing evaluated, no official figure
    per_seq = sequence_values(live, "emdb2", "pve")
    assert {k.protocol for k in per_seq} == {"reference", "corrected"}
    assert all(len(v) == 2 for v in per_seq.values())
    assert all(math.isfinite(x) for v in per_seq.values() for x in v.values())
    assert len(OFFICIAL) == 5
