"""`human3r watch`: the settle logic on a fake clock, a real watchfiles watcher over a tmp folder, and the
`on-new-footage` deployment in prefect.yaml checked with Prefect's own trigger, matching and template code."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tasks.ops.watch import (
    EVENT_NAME,
    MAX_LISTED_FILES,
    InboxWatcher,
    Landed,
    SettleTracker,
    footage_event,
    is_footage_name,
    split_batch,
)

REPO = Path(__file__).resolve().parents[3]


# ------------------------------------------------------------------------------------------------ settle logic
def _paths(batch):
    return [item.path for item in batch]


def test_a_growing_file_is_reported_once_it_stops_growing():
    t = SettleTracker(settle_s=5, max_wait_s=60)
    for now, size in [(0, 10), (2, 20), (4, 30), (8, 40)]:
        t.observe("/in/a.mp4", size, int(now * 1e9), now)
        assert t.take(now) == []
    assert t.take(12.9) == []  # unchanged for 4.9 s only
    assert t.take(13) == [Landed("/in/a.mp4", 40, 8_000_000_000)]
    assert t.take(100) == [] and t.tracked() == []  # once


def test_a_reported_file_comes_back_only_if_its_size_or_mtime_changed():
    t = SettleTracker(settle_s=1, max_wait_s=60)
    t.observe("/in/a.mp4", 10, 1, 0)
    assert _paths(t.take(1)) == ["/in/a.mp4"]
    t.observe("/in/a.mp4", 10, 1, 5)  # a metadata-only event (chmod, a reader): same size and mtime
    assert t.tracked() == [] and t.take(10) == []
    t.observe("/in/a.mp4", 25, 2, 20)  # appended to, or rewritten: a new landing (the dataset decides by content)
    assert t.take(20.5) == []
    assert t.take(21) == [Landed("/in/a.mp4", 25, 2)]


def test_files_settling_together_make_one_batch_and_wait_for_a_sibling_still_copying():
    t = SettleTracker(settle_s=2, max_wait_s=60)
    t.observe("/in/day/a.mp4", 100, 1, 0)
    t.observe("/in/day/b.mov", 50, 1, 0)
    t.observe("/in/day/c.mkv", 1, 1, 0)
    for now in (1, 2, 3):  # c keeps growing while a and b have settled: they are held
        t.observe("/in/day/c.mkv", 1 + now, now, now)
        assert t.take(now) == []
    assert t.growing() == ["/in/day/c.mkv"]
    batch = t.take(5)
    assert _paths(batch) == ["/in/day/a.mp4", "/in/day/b.mov", "/in/day/c.mkv"]


def test_held_files_go_out_after_max_wait_even_if_another_never_stops_growing():
    t = SettleTracker(settle_s=1, max_wait_s=10)
    t.observe("/in/a.mp4", 1, 1, 0)
    for now in range(12):
        t.observe("/in/live.ts", now + 1, now, now)
        batch = t.take(now)
        assert batch == [] or now == 11
    assert _paths(batch) == ["/in/a.mp4"] and t.growing() == ["/in/live.ts"]
    assert t.take(11.5, flush=True) == []  # a flush on exit sends settled files only


def test_a_file_deleted_before_it_settles_is_never_reported():
    t = SettleTracker(settle_s=1, max_wait_s=60)
    t.observe("/in/a.mp4", 1, 1, 0)
    t.forget("/in/a.mp4")
    assert t.take(5) == [] and t.tracked() == []


@pytest.mark.parametrize("name, ok", [
    ("a.mp4", True), ("day/cam1/b.MOV", True), ("c.mkv", True), ("d.ts", True),
    ("notes.txt", False), ("e.jpg", False), ("f", False),
    (".g.mp4", False), (".hidden/h.mp4", False), ("i.mp4.part", False), ("j.part.mp4", False),
    ("k.mp4.tmp", False), ("l.mp4.crdownload", False), ("m.mp4~", False), ("n.mp4.swp", False),
])
def test_only_video_names_count_never_hidden_or_partial_ones(name, ok):
    assert is_footage_name(f"/in/{name}", "/in") is ok


def test_an_event_names_the_inbox_and_gives_the_run_a_single_source(tmp_path):
    inbox = tmp_path / "inbox"
    one = footage_event(inbox, [Landed(str(inbox / "cam1" / "a.mp4"), 7, 1)])
    assert one.event == EVENT_NAME
    assert one.resource == {"prefect.resource.id": f"human3r.inbox.{inbox}", "prefect.resource.name": "inbox"}
    assert one.payload == {"inbox": str(inbox), "source": str(inbox / "cam1" / "a.mp4"), "files": ["cam1/a.mp4"],
                           "count": 1, "bytes": 7}
    batch = [Landed(str(inbox / "cam1" / n), 1, 1) for n in ("b.mp4", "a.mp4")]
    two = footage_event(inbox, batch, dataset="s3://bucket/archive")
    assert two.payload["source"] == str(inbox / "cam1") and two.payload["files"] == ["cam1/a.mp4", "cam1/b.mp4"]
    assert two.payload["dataset"] == "s3://bucket/archive"
    spread = footage_event(inbox, [Landed(str(inbox / d / "x.mp4"), 1, 1) for d in ("cam1", "cam2")])
    assert spread.payload["source"] == str(inbox)
    many = footage_event(inbox, [Landed(str(inbox / f"{i:05d}.mp4"), 1, 1) for i in range(MAX_LISTED_FILES + 5)])
    assert many.payload["count"] == MAX_LISTED_FILES + 5 and len(many.payload["files"]) == MAX_LISTED_FILES


def test_a_batch_is_split_per_file_when_its_folder_holds_a_file_still_growing():
    batch = [Landed("/in/day/a.mp4", 1, 1), Landed("/in/day/b.mp4", 1, 1)]
    assert split_batch(batch, ["/in/other/c.mp4"]) == [batch]
    assert split_batch(batch, ["/in/day/late/c.mp4"]) == [[batch[0]], [batch[1]]]


def test_an_event_the_api_refuses_is_kept_and_sent_again_later(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "cam1").mkdir(parents=True)
    clock = [0.0]
    sent, fail = [], [True]

    def flaky(event):
        if fail[0]:
            raise ConnectionRefusedError("server down")
        sent.append(event)

    w = InboxWatcher(inbox, flaky, settle_s=1, max_wait_s=60, clock=lambda: clock[0], retry_s=30)
    video = inbox / "cam1" / "a.mp4"
    video.write_bytes(b"x" * 10)
    (inbox / "cam1" / "a.mp4.part").write_bytes(b"x")
    w.apply_changes([(1, str(video)), (1, str(inbox / "cam1" / "a.mp4.part"))])
    assert w.tracker.tracked() == [str(video)]
    clock[0] = 1.0
    assert w.step() == []  # settled, sending failed
    fail[0] = False
    clock[0] = 10.0
    assert w.step() == []  # not retried before retry_s
    clock[0] = 31.0
    (event,) = w.step()
    assert sent == [event] and event.payload["source"] == str(video) and w.sent == [event]


def test_a_folder_moved_in_whole_is_scanned_and_files_already_there_are_not(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "old").mkdir(parents=True)
    (inbox / "old" / "x.mp4").write_bytes(b"x")
    moved = tmp_path / "day2"
    (moved / "cam").mkdir(parents=True)
    (moved / "cam" / "y.mp4").write_bytes(b"yy")
    (moved / "cam" / "y.mp4.part").write_bytes(b"y")
    w = InboxWatcher(inbox, print, settle_s=1)
    w.apply_changes([(2, str(inbox)), (2, str(inbox / "old"))])  # folders touched, not added: no scan
    assert w.tracker.tracked() == []
    moved.rename(inbox / "day2")
    w.apply_changes([(1, str(inbox / "day2"))])
    assert w.tracker.tracked() == [str(inbox / "day2" / "cam" / "y.mp4")]


def test_missing_inbox_is_a_usage_error(tmp_path):
    from tasks.errors import SourceError

    with pytest.raises(SourceError, match="mkdir -p"):
        InboxWatcher(tmp_path / "nope", print)


# ------------------------------------------------------------------------------------------------ real watcher
def test_files_copied_into_a_watched_folder_become_exactly_one_event(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "old.mp4").write_bytes(b"already here")  # present before the watch: left to the nightly run
    events, stop = [], threading.Event()
    w = InboxWatcher(inbox, events.append, settle_s=1.5, max_wait_s=30, dataset="/data/archive")
    thread = threading.Thread(target=w.run, kwargs={"stop": stop}, daemon=True)
    thread.start()
    try:
        assert w.ready.wait(10), "the watcher did not start"
        day = inbox / "day1"
        day.mkdir()
        (day / "b.mov.part").write_bytes(os.urandom(8192))  # a download in progress
        with open(day / "a.mp4", "wb") as f:  # a copy growing for ~1 s
            for i in range(5):
                f.write(os.urandom(4096))
                f.flush()
                time.sleep(0.2)
                if i == 2:
                    (day / "b.mov.part").rename(day / "b.mov")  # the download finishes: renamed into place
        (day / "notes.txt").write_text("not a video")
        (day / ".c.mp4").write_bytes(b"hidden")
        deadline = time.monotonic() + 20
        while not events and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)  # nothing else may follow
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert len(events) == 1, [e.payload for e in events]
    payload = events[0].payload
    assert payload["files"] == ["day1/a.mp4", "day1/b.mov"] and payload["count"] == 2
    assert payload["source"] == str(day.resolve()) and payload["inbox"] == str(inbox.resolve())
    assert payload["bytes"] == 5 * 4096 + 8192 and payload["dataset"] == "/data/archive"
    assert events[0].resource["prefect.resource.id"] == f"human3r.inbox.{inbox.resolve()}"


# ------------------------------------------------------------------------------------------------ the deployment
@pytest.fixture(scope="module")
def deployments():
    import yaml
    from prefect.cli.deploy._models import PrefectYamlModel

    model = PrefectYamlModel.model_validate(yaml.safe_load((REPO / "prefect.yaml").read_text()))
    return {d.name: d for d in model.deployments}


def _server_automation(deployment):
    """The automation `prefect deploy` creates from the deployment's trigger, as the server validates it."""
    import uuid

    from prefect.cli.deploy._triggers import _initialize_deployment_triggers
    from prefect.server.events.schemas.automations import AutomationCore

    (trigger,) = _initialize_deployment_triggers(deployment.name, [dict(t) for t in deployment.triggers])
    trigger.set_deployment_id(uuid.uuid4())
    return AutomationCore.model_validate(trigger.as_automation().model_dump(mode="json"))


def _received(event):
    """The event as the server receives it from `send_event`."""
    from prefect.server.events.schemas.events import ReceivedEvent

    from tasks.ops.watch import to_prefect_event

    return ReceivedEvent.model_validate_json(to_prefect_event(event).model_dump_json())


def test_the_trigger_matches_the_event_the_watcher_emits_and_nothing_else(deployments, tmp_path):
    import dataclasses

    deployment = deployments["on-new-footage"]
    assert deployment.entrypoint == deployments["nightly"].entrypoint
    automation = _server_automation(deployment)
    event = footage_event(tmp_path / "inbox", [Landed(str(tmp_path / "inbox" / "a.mp4"), 1, 1)])
    assert automation.enabled and automation.trigger.covers(_received(event))
    assert automation.trigger.immediate  # one run per event, no waiting window
    other_name = dataclasses.replace(event, event="human3r.footage.deleted")
    other_resource = dataclasses.replace(event, resource={"prefect.resource.id": "prefect.flow-run.1"})
    assert not automation.trigger.covers(_received(other_name))
    assert not automation.trigger.covers(_received(other_resource))


@pytest.mark.parametrize("dataset", [None, "/srv/archive"])
def test_the_trigger_renders_parameters_the_flow_accepts(deployments, tmp_path, dataset):
    import asyncio
    import datetime
    import uuid

    from prefect.server.events.schemas.automations import Automation, TriggeredAction

    from flows.reconstruct import reconstruct_archive

    automation = _server_automation(deployments["on-new-footage"])
    inbox = tmp_path / "inbox"
    event = footage_event(inbox, [Landed(str(inbox / "d" / n), 1, 1) for n in ("a.mp4", "b.mp4")], dataset)
    (action,) = automation.actions
    fired = TriggeredAction(automation=Automation(id=uuid.uuid4(), **automation.model_dump()),
                            triggered=datetime.datetime.now(datetime.UTC), triggering_labels={},
                            triggering_event=_received(event), action=action)
    rendered = asyncio.run(action.render_parameters(fired))
    assert rendered == {"source": str(inbox / "d"), "dataset": dataset or "data/archive"}
    params = reconstruct_archive.validate_parameters({**deployments["on-new-footage"].parameters, **rendered})
    assert params["source"] == str(inbox / "d")


def test_runs_of_the_deployment_queue_one_at_a_time(deployments):
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy

    limit = deployments["on-new-footage"].concurrency_limit
    assert limit.limit == deployments["nightly"].concurrency_limit == 1
    assert ConcurrencyLimitStrategy(limit.collision_strategy) is ConcurrencyLimitStrategy.ENQUEUE


# ------------------------------------------------------------------------------------------------ the command
def test_watch_without_a_reachable_api_is_one_line_and_exit_2(human3r_cli, tmp_path):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    (tmp_path / "inbox").mkdir()
    for url, needle in [("", "PREFECT_API_URL is not set"), ("http://127.0.0.1:9/api", "no Prefect API answers")]:
        with temporary_settings({PREFECT_API_URL: url}):
            result = human3r_cli("watch", tmp_path / "inbox", "--once", code=2)
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
        assert needle in result.stderr and "human3r demo" in result.stderr


def test_watch_command_is_listed_and_its_modules_import_light(human3r_cli):
    import subprocess
    import sys

    code = ("import sys, tasks.cli.watch, tasks.ops.watch; "
            "print(sorted(m for m in ('prefect', 'torch', 'watchfiles', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
    assert "watch" in human3r_cli("--help").stdout
    assert "--settle-seconds" in human3r_cli("watch", "--help").stdout
