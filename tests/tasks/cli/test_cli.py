"""`human3r query`, `schema`, `synth` and `vacuum` as a user runs them: in process through click's CliRunner, and
the installed console script once."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys

import pytest

from storage import schema as S


@pytest.fixture(scope="module")
def run(human3r_cli):
    def run(*args, ok=True):
        return human3r_cli(*args, code=0 if ok else None)

    return run


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, run):
    root = tmp_path_factory.mktemp("cli") / "ds"
    out = run("synth", "--root", str(root), "--videos", "3", "--frames", "40", "--points-per-frame", "8")
    assert "wrote 3 synthetic videos" in out.stdout
    return root


def test_query_formats(dataset, run):
    sql = "SELECT video_id, count(*) AS n FROM frames GROUP BY 1 ORDER BY 1"
    rows = json.loads(run("query", "--root", str(dataset), "--format", "json", sql).stdout)
    assert len(rows) == 3 and all(r["n"] == 40 for r in rows)
    table = list(csv.reader(io.StringIO(run("query", "--root", str(dataset), "--format", "csv", sql).stdout)))
    assert table[0] == ["video_id", "n"] and len(table) == 4
    text = run("query", "--root", str(dataset), sql).stdout
    assert rows[0]["video_id"] in text and "3 rows" in text


def test_query_lists_as_json_in_csv(dataset, run):
    out = run("query", "--root", str(dataset), "--format", "csv",
              "SELECT cam_to_world FROM frames ORDER BY video_id, frame_idx LIMIT 1").stdout
    value = list(csv.reader(io.StringIO(out)))[1][0]
    matrix = json.loads(value)
    assert len(matrix) == 16 and matrix[12:] == [0.0, 0.0, 0.0, 1.0]  # last row of a rigid transform


def test_dataset_from_environment(dataset, human3r_cli):
    out = human3r_cli("query", "--format", "json", "SELECT count(*) AS n FROM videos",
                      env={"HUMAN3R_DATASET": str(dataset)})
    assert out.stdout.strip() == '[{"n": 3}]'


@pytest.mark.parametrize("args, needle", [
    (["SELEC 1"], "syntax error"),
    (["COPY (SELECT 1) TO 'x.csv'"], "only read queries"),
    (["SELECT nope FROM humans"], "nope"),
])
def test_query_errors_are_one_line(dataset, args, needle, run):
    proc = run("query", "--root", str(dataset), *args, ok=False)
    assert proc.exit_code == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and needle in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_dataset_says_what_to_do(tmp_path, run):
    proc = run("query", "--root", str(tmp_path / "none"), "SELECT 1", ok=False)
    assert proc.exit_code == 2 and "no dataset at" in proc.stderr and "human3r" in proc.stderr


def test_wrong_schema_version_is_refused(dataset, tmp_path, run):
    copy = tmp_path / "old"
    shutil.copytree(dataset, copy)
    (copy / S.DATASET_FILE).write_text(json.dumps({"schema_version": 0}))
    proc = run("query", "--root", str(copy), "SELECT 1", ok=False)
    assert proc.exit_code == 2 and "schema version 0" in proc.stderr


def test_schema_documents_every_column(run):
    text = run("schema").stdout
    for table in S.TABLES.values():
        assert f"## {table.name}" in text
        for col in table.columns:
            assert f"`{col.name}`" in text


def test_help_explains(run):
    out = run("--help").stdout
    for word in ("query", "schema", "synth", "reconstruct", "demo", "weights"):
        assert word in out
    assert "track_speed()" in run("query", "--help").stdout
    assert "[default: 1]" in run("reconstruct", "--help").stdout  # defaults come from tasks/options.py


def test_console_script_starts_without_torch():
    """The installed `human3r` entry point: --help answers without importing torch, ray or prefect."""
    exe = shutil.which("human3r")
    cmd = [exe, "--help"] if exe else [sys.executable, "-m", "tasks.cli.main", "--help"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "reconstruct" in proc.stdout
    code = ("import sys, tasks.cli.main; from click.testing import CliRunner; CliRunner().invoke(tasks.cli.main.cli, "
            "['--help']); print(sorted(m for m in ('torch', 'ray', 'prefect') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_vacuum_removes_only_orphans(dataset, tmp_path, run):
    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    orphan = copy / "frames" / "part-crashed-frames.parquet"  # a writer killed before its commit
    orphan.write_bytes(b"half a file")
    before = run("query", "--root", str(copy), "--format", "json", "SELECT count(*) AS n FROM frames").stdout
    assert "removed 0 unreferenced files" in run("vacuum", "--root", str(copy)).stdout  # too recent by default
    assert "removed 1 unreferenced files" in run("vacuum", "--root", str(copy), "--min-age", "0").stdout
    assert not orphan.exists()
    assert run("query", "--root", str(copy), "--format", "json", "SELECT count(*) AS n FROM frames").stdout == before
