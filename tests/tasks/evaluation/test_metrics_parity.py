"""`human3r parity eval`: the whole pack passes; a pack whose recorded numbers are off fails; a folder that is not a
pack is a usage error."""

from __future__ import annotations

import io
import json
import shutil

from click.testing import CliRunner

from tasks.cli.main import cli
from tasks.evaluation.parity import Report, check_camera


def test_the_pack_passes_every_check(pack):
    result = CliRunner().invoke(cli, ["parity", "eval", str(pack)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert text.splitlines()[-1].endswith(" passed, 0 failed")
    for family in ("camcoord pa_mpjpe", "world w_mpjpe100", "matching", "camera ate_m", "depth metric abs_rel",
                   "depth bonn scale abs_rel", "edge cases (reference protocol)", "aggregate summary"):
        assert family in text


def test_a_pack_with_a_wrong_number_fails(pack, tmp_path):
    bad = tmp_path / "pack"
    (bad / "camera").mkdir(parents=True)
    for name in ("camera.json",):
        shutil.copy(pack / "camera" / name, bad / "camera" / name)
    for seq in ("seqA", "seqB"):
        shutil.copytree(pack / "camera" / seq, bad / "camera" / seq)
    meta = json.loads((bad / "camera/camera.json").read_text())
    meta["sequences"][0]["ate"] *= 1 + 1e-8  # beyond the 1e-9 tolerance
    (bad / "camera/camera.json").write_text(json.dumps(meta))
    rep = Report()
    check_camera(bad, json.loads((pack / "tolerances.json").read_text())["camera"], rep)
    assert not rep.checks["camera ate_m"].ok
    assert rep.checks["camera rpe_rot_deg"].ok
    out = io.StringIO()
    assert not rep.print(out)
    assert "FAIL" in out.getvalue()


def test_a_folder_that_is_not_a_pack_is_a_usage_error(tmp_path):
    not_a_pack = CliRunner().invoke(cli, ["parity", "eval", str(tmp_path)])
    assert not_a_pack.exit_code == 2
    assert "not a parity pack" in not_a_pack.output
