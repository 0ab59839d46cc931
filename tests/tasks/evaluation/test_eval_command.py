"""`human3r eval` end to end on generated mini benchmarks (EMDB's and TUM's exact release formats) with the tiny
untrained network, the SMPL-X stand-in and the SMPL-file stand-ins: rows land in `evaluations`, the report shows
them, a second run evaluates nothing new, a killed run resumes, a failing sequence is a row and the rest goes on,
bad inputs are one line and exit code 2."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage import schema as S
from storage.catalog import open_catalog

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[3]


def query(root, sql, params=None) -> list[dict]:
    with open_catalog(root) as cat:
        return cat.query(sql, params).to_pylist()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from tasks.evaluation.benchmarks.synthetic import write_mini_emdb, write_mini_tum

    base = tmp_path_factory.mktemp("benchmarks")
    write_mini_emdb(base / "emdb", n_frames=8)
    write_mini_tum(base / "tum", n_frames=8, names=("rgbd_dataset_freiburg3_walking_xyz",
                                                     "rgbd_dataset_freiburg3_sitting_static"))
    return base


def _eval(human3r_cli, *args, code=0):
    return human3r_cli("eval", *args, "--checkpoint", "untrained:tiny", code=code)


def test_eval_fills_the_table_and_the_report_then_evaluates_nothing_new(human3r_cli, data, tmp_path, smplx_npz,
                                                                        smpl_files):
    root = tmp_path / "ds"
    human = ("emdb2", "--data", data / "emdb", "--out", root, "--body-model", smplx_npz, "--smpl-files",
             smpl_files, "--protocol", "both")
    out = _eval(human3r_cli, *human)
    assert "2 evaluated, 0 already evaluated, 0 failed" in out.stdout and "UNTRAINED WEIGHTS" in out.stderr
    rows = query(root, "SELECT * FROM evaluations WHERE sequence IS NOT NULL")
    per = {(r[S.SEQUENCE], r[S.PROTOCOL]) for r in rows}
    assert per == {(s, p) for s in ("P0/09_outdoor_walk", "P7/57_outdoor_rock_chair")
                   for p in ("reference", "corrected")}
    assert len(rows) == 4 * 20  # 7 camera-frame + 6 world + 3 detection metrics + 4 counts, per sequence/protocol
    # random weights predict a zero focal length: every 2-D box collapses, as the reference's assertion would say
    assert {r[S.STATUS] for r in rows} == {"excluded"} and all("DegenerateBoxError" in r[S.MESSAGE] for r in rows)
    assert {r[S.MODEL_VERSION] for r in rows} == {"untrained-tiny-seed0"} and {r[S.N_FRAMES] for r in rows} == {6}

    camera = ("tum_50", "--data", data / "tum", "--out", root, "--protocol", "both")
    out = _eval(human3r_cli, *camera)
    assert "2 evaluated" in out.stdout and "average over 2 sequence(s) written" in out.stderr
    ate = query(root, "SELECT sequence, protocol, value, count, unit FROM evaluations WHERE benchmark = 'tum_50' "
                      "AND metric = 'ate_m' ORDER BY ALL")
    assert len(ate) == 6 and all(r["value"] >= 0 and r["unit"] == "m" for r in ate)  # 2 sequences + average, x2
    averages = {r["protocol"]: r for r in ate if r["sequence"] is None}
    seqs = [r for r in ate if r["sequence"] is not None and r["protocol"] == "corrected"]
    assert averages["corrected"]["value"] == pytest.approx(sum(r["value"] for r in seqs) / 2)
    assert averages["reference"]["value"] == pytest.approx(sum(float(f"{r['value']:.6f}") for r in seqs) / 2)
    assert {r["count"] for r in seqs} == {8}  # poses compared

    report = human3r_cli("eval", "report", "--root", root, "--out", tmp_path / "report.md")
    text = (tmp_path / "report.md").read_text()
    assert text == report.stdout.rstrip("\n") + "\n" or text.strip() == report.stdout.strip()
    assert "TUM-dynamics (50 frames) ATE (m)" in text and "untrained-tiny-seed0 · float32 · reference" in text
    assert "| official ViT-L/896 | 44.1 | 71.2 | 84.9 |" in text and "corrected − reference" in text
    assert "untrained-tiny-seed0 · float32 · corrected, emdb2: 2 sequence(s) (2 excluded), 12 frames" in text

    stored = query(root, "SELECT count(*) AS n FROM evaluations_all")[0]["n"]
    for args in (human, camera):  # everything is there: nothing is evaluated, nothing is written
        out = _eval(human3r_cli, *args)
        assert "0 evaluated, 2 already evaluated, 0 failed" in out.stdout
    assert query(root, "SELECT count(*) AS n FROM evaluations_all")[0]["n"] == stored


def test_a_failing_sequence_is_a_row_and_the_rest_goes_on(human3r_cli, data, tmp_path):
    tum = tmp_path / "tum"
    shutil.copytree(data / "tum", tum)
    frame = sorted((tum / "rgbd_dataset_freiburg3_sitting_static" / "rgb").iterdir())[3]
    good = frame.read_bytes()
    frame.write_bytes(good[:100])  # a truncated PNG
    root = tmp_path / "ds"
    out = _eval(human3r_cli, "tum_50", "--data", tum, "--out", root, code=1)
    assert "1 evaluated, 0 already evaluated, 1 failed" in out.stdout
    failed = query(root, "SELECT * FROM evaluations WHERE status = 'failed'")
    assert len(failed) == 1 and failed[0][S.SEQUENCE] == "rgbd_dataset_freiburg3_sitting_static"
    assert failed[0][S.ERROR_TYPE] == "FrameReadError" and frame.name in failed[0][S.MESSAGE]
    avg = query(root, "SELECT message, n_sequences FROM evaluations WHERE sequence IS NULL")
    assert {r["n_sequences"] for r in avg} == {1} and "failed: rgbd_dataset_freiburg3_sitting_static" in avg[0][
        "message"]
    frame.write_bytes(good)
    out = _eval(human3r_cli, "tum_50", "--data", tum, "--out", root)  # the failed one only, and it succeeds now
    assert "1 evaluated, 1 already evaluated, 0 failed" in out.stdout
    assert query(root, "SELECT count(*) AS n FROM evaluations WHERE status = 'failed'")[0]["n"] == 0
    assert {r["n_sequences"] for r in query(root, "SELECT n_sequences FROM evaluations WHERE sequence IS NULL")} == {2}


def test_a_killed_evaluation_resumes(tmp_path):
    from tasks.evaluation.benchmarks.synthetic import write_mini_tum

    names = ("rgbd_a", "rgbd_b", "rgbd_c")
    write_mini_tum(tmp_path / "tum", n_frames=12, names=names)
    root = tmp_path / "ds"
    cmd = [sys.executable, "-m", "tasks.cli.main", "eval", "tum_50", "--data", str(tmp_path / "tum"), "--out",
           str(root), "--checkpoint", "untrained:tiny"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        done: list[dict] = []
        while time.monotonic() < deadline and proc.poll() is None:
            if (root / S.EVALUATIONS.name).exists():
                done = query(root, "SELECT DISTINCT sequence FROM evaluations_all")
                if done:
                    break
            time.sleep(0.2)
        assert done and proc.poll() is None, proc.stderr.read() if proc.poll() is not None else "no commit in 180 s"
        proc.send_signal(signal.SIGKILL)  # mid-way through the next sequence
    finally:
        proc.wait(30)
    before = query(root, "SELECT sequence, count(*) AS n FROM evaluations_all GROUP BY 1")
    assert 1 <= len(before) < 3 and {r["n"] for r in before} == {3}  # whole sequences only, never part of one

    from click.testing import CliRunner

    from tasks.cli.main import cli

    result = CliRunner().invoke(cli, [str(a) for a in cmd[3:]], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert f"{3 - len(before)} evaluated, {len(before)} already evaluated, 0 failed" in result.stdout
    after = query(root, "SELECT sequence, count(*) AS n FROM evaluations_all WHERE sequence IS NOT NULL GROUP BY 1")
    assert sorted(r["sequence"] for r in after) == list(names) and {r["n"] for r in after} == {3}  # once each


def test_bad_inputs_are_one_line_and_exit_2(human3r_cli, data, tmp_path, smplx_npz, smpl_files):
    emdb = tmp_path / "emdb"
    shutil.copytree(data / "emdb", emdb)
    corrupt = next(emdb.glob("P0/*/*_data.pkl"))
    corrupt.write_bytes(b"not a pickle")
    human = ("--body-model", smplx_npz, "--smpl-files", smpl_files)
    for args, says in (
        (("nope", "--data", data / "emdb"), "unknown benchmark 'nope'"),
        (("emdb2", "--data", tmp_path / "missing", *human), "is not a folder"),
        (("emdb2", "--data", data / "tum", *human), "is not an EMDB folder"),
        (("emdb2", "--data", emdb, *human), "P0_09_outdoor_walk_data.pkl"),
        (("emdb2", "--data", data / "emdb", "--smpl-files", smpl_files), "--body-model"),
        (("emdb2", "--data", data / "emdb", "--body-model", smplx_npz, "--smpl-files", tmp_path), "lacks"),
        (("tum_50", "--data", data / "tum", "--sequence", "nope"), "--sequence: nope not in tum_50"),
        (("tum_50", "--data", data / "tum", "--protocol", "paper"), "--protocol: must be reference"),
        (("tum_51", "--data", data / "tum"), "unknown benchmark 'tum_51'"),
    ):
        env = {"HUMAN3R_BODY_MODEL": "", "HUMAN3R_SMPL_FILES": ""}
        result = human3r_cli("eval", *args, "--out", tmp_path / "ds", "--checkpoint", "untrained:tiny", code=2,
                             env=env)
        assert result.stderr.count("\n") == 1 and says in result.stderr, (args, result.stderr)
    assert not (tmp_path / "ds" / S.EVALUATIONS.name).exists()  # nothing was written
    for args, says in ((("report", "--root", tmp_path / "nothing"), "no dataset"),
                       (("compare", "--root", tmp_path / "nothing"), "--model-version")):
        result = human3r_cli("eval", *args, code=2)
        assert result.stderr.count("\n") == 1 and says in result.stderr, (args, result.stderr)
