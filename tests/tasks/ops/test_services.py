"""The local services' process handling: a started service leaves no open file or unreaped child behind in the
process that started it, and runs from the checkout that holds prefect.yaml."""

from __future__ import annotations

import gc
import os
import warnings
from pathlib import Path

import pytest

from tasks.ops.services import Services, repo_root


def _open_files() -> set[str]:
    fds = Path("/proc/self/fd")
    out = set()
    for fd in fds.iterdir():
        try:
            out.add(os.readlink(fd))
        except OSError:  # the descriptor of the listing itself, closed meanwhile
            pass
    return out


def test_deployments_run_from_the_checkout_holding_prefect_yaml():
    assert (repo_root() / "prefect.yaml").is_file()
    assert (repo_root() / "flows" / "reconstruct.py").is_file()


def test_a_started_service_leaves_no_open_log_and_is_reaped_on_stop(tmp_path):
    services = Services(home=tmp_path / "home", port=1)  # `prefect version` needs no server
    gc.collect()  # what earlier tests left for the collector warns now, not inside the block that watches ours
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pid = services._spawn("worker", ["version"])
        gc.collect()
        assert str(services.home / "worker.log") not in _open_files()  # the child holds its own descriptor
        assert services._alive("worker") in (pid, None)  # running, or done already (and then reaped)
        services.stop()
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, leaks  # neither an unclosed log file nor a dropped, still-running child
    with pytest.raises(ChildProcessError):  # no child of ours left to wait for: it was reaped, not left a zombie
        os.waitpid(pid, os.WNOHANG)
