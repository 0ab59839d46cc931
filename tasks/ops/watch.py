"""Watching an inbox for new footage: video files that land and stop growing become one Prefect event per batch.

The event starts the `on-new-footage` deployment (prefect.yaml: a deployment trigger), which runs
`reconstruct-archive` over the footage that landed. The contract, matched there:

    event     human3r.footage.landed
    resource  {"prefect.resource.id": "human3r.inbox.<absolute inbox path>", "prefect.resource.name": <folder name>}
    payload   {"inbox": <absolute inbox path>,
               "source": <what the run reads: the one file, or the deepest folder holding the whole batch>,
               "files": [<paths relative to the inbox, sorted; at most MAX_LISTED_FILES>], "count": n,
               "bytes": total size, "dataset": <dataset root, only when the watcher was given one>}

A file has *landed* when its (size, mtime) stayed the same for `settle_s` seconds of observation. Settled files
are held while another video under the inbox is still growing, so a copy of many files becomes one event (and one
run), but never longer than `max_wait_s`. A file is reported again only if its size or mtime changed since it was
reported; whether its content is new is decided by the dataset (content hash), where a re-run is cheap.

`SettleTracker` is the pure part (observations in, batches out; tests drive it with a fake clock);
`InboxWatcher` feeds it from watchfiles and stat calls and hands events to an emitter (`prefect_emitter` sends them
to a Prefect API; tests pass a list's `append`). Nothing here imports prefect or watchfiles at module import.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from tasks.errors import ServiceError, SourceError
from tasks.reconstruction.discover import is_video_name

EVENT_NAME = "human3r.footage.landed"
RESOURCE_PREFIX = "human3r.inbox."
MAX_LISTED_FILES = 1000  # the payload lists at most this many files (events are capped at 1.5 MB); `count` is exact
_ADDED = 1  # watchfiles.Change.added
RETRY_S = 30.0  # wait before sending an event again after the API did not take it

log = logging.getLogger(__name__)


def _hidden(path: str | os.PathLike, inbox: str | os.PathLike) -> bool:
    """Outside `inbox`, or some part of the path below it starts with '.'."""
    try:
        return any(p.startswith(".") for p in Path(path).relative_to(inbox).parts)
    except ValueError:
        return True


def is_footage_name(path: str | os.PathLike, inbox: str | os.PathLike) -> bool:
    """A video name under `inbox` that a listing would pick up (`tasks.reconstruction.discover.is_video_name`)."""
    try:
        relative = Path(path).relative_to(inbox)
    except ValueError:
        return False
    return str(relative) != "." and is_video_name(relative.as_posix())


@dataclasses.dataclass(frozen=True)
class Landed:
    """A video file that stopped growing."""

    path: str  # absolute path
    size: int  # bytes
    mtime_ns: int  # modification time, ns since the epoch


@dataclasses.dataclass
class _Tracked:
    size: int
    mtime_ns: int
    since: float  # clock time of the last change seen
    ready_at: float | None = None  # clock time it was first seen settled (held for batching until emitted)


class SettleTracker:
    """Turns (path, size, mtime, now) observations into batches of settled files. No IO, no sleeping.

    `observe` every candidate file whenever it may have changed (and on every tick for the files in `tracked()`),
    `forget` deleted ones, and call `take(now)` on every tick: it returns the batch to report, or [].
    """

    def __init__(self, settle_s: float, max_wait_s: float):
        if settle_s <= 0 or max_wait_s < 0:
            raise ValueError(f"settle_s must be > 0 and max_wait_s >= 0, got {settle_s} and {max_wait_s}")
        self.settle_s = settle_s
        self.max_wait_s = max_wait_s
        self._files: dict[str, _Tracked] = {}
        self._reported: dict[str, tuple[int, int]] = {}  # path -> (size, mtime_ns) last reported

    def observe(self, path: str, size: int, mtime_ns: int, now: float) -> None:
        signature = (size, mtime_ns)
        state = self._files.get(path)
        if state is None:
            if self._reported.get(path) == signature:
                return  # a metadata-only change of a file already reported
            self._files[path] = _Tracked(size, mtime_ns, since=now)
        elif (state.size, state.mtime_ns) != signature:
            self._files[path] = _Tracked(size, mtime_ns, since=now)  # grew or was rewritten: settle again

    def forget(self, path: str) -> None:
        """The file is gone (deleted or renamed away)."""
        self._files.pop(path, None)
        self._reported.pop(path, None)

    def tracked(self) -> list[str]:
        """Files not yet reported: to stat again on every tick."""
        return sorted(self._files)

    def growing(self) -> list[str]:
        """Tracked files that have not settled yet."""
        return sorted(p for p, s in self._files.items() if s.ready_at is None)

    def take(self, now: float, *, flush: bool = False) -> list[Landed]:
        """The settled files to report now, sorted by path: all of them once nothing else is growing, or once the
        oldest has been held `max_wait_s`; with `flush`, whatever has settled (the watcher is stopping)."""
        for state in self._files.values():
            if state.ready_at is None and now - state.since >= self.settle_s:
                state.ready_at = now
        ready = {p: s for p, s in self._files.items() if s.ready_at is not None}
        if not ready:
            return []
        oldest = min(s.ready_at for s in ready.values())
        if not (flush or len(ready) == len(self._files) or now - oldest >= self.max_wait_s):
            return []
        batch = [Landed(p, s.size, s.mtime_ns) for p, s in sorted(ready.items())]
        for item in batch:
            del self._files[item.path]
            self._reported[item.path] = (item.size, item.mtime_ns)
        return batch


# ------------------------------------------------------------------------------------------------ the event
@dataclasses.dataclass(frozen=True)
class FootageEvent:
    """One `human3r.footage.landed` event, ready to send (`id` stays the same when sending is retried)."""

    resource: dict[str, str]
    payload: dict
    event: str = EVENT_NAME
    id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))


def batch_source(files: list[str]) -> str:
    """What the run should read: the file itself for one file, else the deepest folder holding them all."""
    return files[0] if len(files) == 1 else os.path.commonpath(files)


def footage_event(inbox: str | os.PathLike, batch: list[Landed], dataset: str | None = None) -> FootageEvent:
    """The event reporting `batch` (absolute paths under `inbox`)."""
    inbox = os.path.abspath(inbox)
    files = sorted(item.path for item in batch)
    payload = {
        "inbox": inbox,
        "source": batch_source(files),
        "files": [os.path.relpath(p, inbox) for p in files[:MAX_LISTED_FILES]],
        "count": len(files),
        "bytes": sum(item.size for item in batch),
    }
    if dataset:
        payload["dataset"] = dataset
    resource = {"prefect.resource.id": RESOURCE_PREFIX + inbox, "prefect.resource.name": Path(inbox).name}
    return FootageEvent(resource=resource, payload=payload)


def split_batch(batch: list[Landed], growing: list[str]) -> list[list[Landed]]:
    """One batch, unless a file still growing lies under the batch's folder (the run would read it half-written):
    then one batch per file, each run reading exactly one file."""
    if len(batch) > 1:
        folder = Path(batch_source([item.path for item in batch]))
        if any(Path(g).is_relative_to(folder) for g in growing):
            return [[item] for item in batch]
    return [batch]


# ------------------------------------------------------------------------------------------------ sending
Emitter = Callable[[FootageEvent], None]


def prefect_api_url() -> str:
    """The Prefect API the events go to (PREFECT_API_URL, from the environment or the active profile), checked to
    answer; otherwise a ServiceError saying how to get one."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    url = (PREFECT_API_URL.value() or "").rstrip("/")
    if not url:
        raise ServiceError('PREFECT_API_URL is not set, so there is no Prefect server to send events to; start the '
                           'local services with `human3r demo` and run `eval "$(human3r services env)"`, or export '
                           'PREFECT_API_URL=http://HOST:4200/api')
    try:
        ok = httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.HTTPError as err:
        raise ServiceError(f"no Prefect API answers at PREFECT_API_URL={url} ({type(err).__name__}); start it "
                           f"(`human3r demo` starts a local server and worker) or fix PREFECT_API_URL") from err
    if not ok:
        raise ServiceError(f"the Prefect API at PREFECT_API_URL={url} is not healthy; see its log "
                           f"(`human3r services status`)")
    return url


def to_prefect_event(event: FootageEvent):
    """The `prefect.events.Event` sent on the wire."""
    from prefect.events.schemas.events import Event

    return Event(event=event.event, resource=event.resource, payload=event.payload, id=event.id)


def send_event(event: FootageEvent, api_url: str) -> None:
    """Send one event to the Prefect server at `api_url` over its events websocket; raises if it cannot."""
    import asyncio

    from prefect.events.clients import PrefectCloudEventsClient, PrefectEventsClient
    from prefect.settings import PREFECT_CLOUD_API_URL

    cloud = api_url.startswith(PREFECT_CLOUD_API_URL.value())
    client_type = PrefectCloudEventsClient if cloud else PrefectEventsClient
    prefect_event = to_prefect_event(event)

    async def _send() -> None:
        async with client_type(api_url=api_url, reconnection_attempts=2) as client:
            await client.emit(prefect_event)

    asyncio.run(_send())


def prefect_emitter(api_url: str) -> Emitter:
    """An emitter sending each event to the Prefect server at `api_url` (see `prefect_api_url`)."""
    return lambda event: send_event(event, api_url)


# ------------------------------------------------------------------------------------------------ the watcher
def _size_gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


class InboxWatcher:
    """Watches `inbox` recursively and emits one event per batch of video files that landed (see module doc).

    Files already in the inbox when it starts are not reported (the nightly run covers them); files that change
    after it started are. `run()` blocks until `stop` is set, Ctrl-C (KeyboardInterrupt, re-raised), or with
    `once` the first event sent; on the way out, files that settled but were held for batching are sent.
    """

    def __init__(self, inbox: str | os.PathLike, emit: Emitter, *, settle_s: float = 10.0, max_wait_s: float = 300.0,
                 dataset: str | None = None, clock: Callable[[], float] = time.monotonic, retry_s: float = RETRY_S):
        self.inbox = Path(inbox).resolve()
        if not self.inbox.is_dir():
            raise SourceError(f"the inbox {inbox} is not a folder; create it (mkdir -p {inbox}) or point at the "
                              f"folder new footage is copied into")
        self.emit = emit
        self.dataset = dataset
        self.tracker = SettleTracker(settle_s, max_wait_s)
        self.clock = clock
        self.retry_s = retry_s
        self.sent: list[FootageEvent] = []
        self.ready = threading.Event()  # set once the filesystem watch is in place
        self._outbox: list[FootageEvent] = []
        self._retry_at = 0.0

    # -------------------------------------------------------------------------------------------- observing
    def _observe(self, path: str, now: float) -> None:
        try:
            st = os.stat(path)
        except OSError:
            self.tracker.forget(path)
            return
        if os.path.isfile(path):
            self.tracker.observe(path, st.st_size, st.st_mtime_ns, now)

    def apply_changes(self, changes: Iterable[tuple[int, str]]) -> None:
        """Feed watchfiles changes ((Change, path) pairs): video files are (re)observed or forgotten, and a folder
        that appears (moved in whole, or created) is scanned, since files inside it may predate its watch."""
        now = self.clock()
        for change, path in changes:
            if is_footage_name(path, self.inbox):
                self._observe(path, now)
            elif int(change) == _ADDED and os.path.isdir(path) and not _hidden(path, self.inbox) and \
                    Path(path) != self.inbox:
                for found in sorted(Path(path).rglob("*")):
                    if is_footage_name(found, self.inbox):
                        self._observe(str(found), now)

    # -------------------------------------------------------------------------------------------- emitting
    def step(self, *, flush: bool = False) -> list[FootageEvent]:
        """Stat the files being tracked, take the batch that is due, and send what is waiting; returns the events
        sent now."""
        now = self.clock()
        for path in self.tracker.tracked():
            self._observe(path, now)
        batch = self.tracker.take(now, flush=flush)
        if batch:
            growing = self.tracker.growing()
            self._outbox += [footage_event(self.inbox, part, self.dataset) for part in split_batch(batch, growing)]
        if not self._outbox or (now < self._retry_at and not flush):
            return []
        sent: list[FootageEvent] = []
        while self._outbox:
            event = self._outbox[0]
            p = event.payload
            try:
                self.emit(event)
            except Exception as err:  # the API is down or refused: keep the event, try again later
                self._retry_at = now + self.retry_s
                log.warning("could not send %s for %d file(s) under %s (%s: %s); retrying in %.0f s", event.event,
                            p["count"], p["source"], type(err).__name__, err, self.retry_s)
                break
            self._outbox.pop(0)
            sent.append(event)
            log.info("emitted %s: %d file(s), %s, source=%s", event.event, p["count"], _size_gb(p["bytes"]),
                     p["source"])
        self.sent += sent
        return sent

    def run(self, *, stop: threading.Event | None = None, once: bool = False) -> list[FootageEvent]:
        """Watch until stopped (see class doc); returns the events sent."""
        from watchfiles import watch

        tick_ms = int(max(50, min(1000, self.tracker.settle_s * 250)))  # a quarter of the settle time, <= 1 s
        try:
            for changes in watch(self.inbox, watch_filter=None, debounce=tick_ms, step=50, rust_timeout=tick_ms,
                                 yield_on_timeout=True, stop_event=stop, recursive=True):
                self.ready.set()
                self.apply_changes(changes)
                if self.step() and once:
                    break
        finally:
            if self.tracker.tracked() or self._outbox:
                self.step(flush=True)
            if growing := self.tracker.growing():
                log.warning("stopped with %d file(s) not settled yet, not reported: %s", len(growing),
                            ", ".join(os.path.relpath(g, self.inbox) for g in growing[:5]))
            if self._outbox:
                log.warning("stopped with %d event(s) not sent", len(self._outbox))
        return self.sent
