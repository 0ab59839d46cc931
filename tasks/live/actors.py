"""Many cameras on a Ray cluster: one long-lived actor per camera, each holding the model and running its camera
(`tasks.live.camera.LiveCamera`) in a thread, restarted when it dies.

`LiveCameraActor` is a thin shell: it loads the network once (as `tasks.reconstruction.actors.Human3RActor`
does), checks the run identity against it, and starts the camera; `health()` answers with the camera's
`live_status` row (the same the camera writes to the dataset), `stop()` commits the open segment and returns the
summary. Each actor asks Ray for `ClusterOptions.gpus_per_actor` GPUs (1 when the cluster has GPUs and the option
is empty, as for videos) and is named ``live:<camera>`` in the ``human3r`` namespace, so a camera never runs twice on
one cluster. `CameraPool.check()` asks every actor for its health and replaces one that died (killed, out of
memory) or whose camera failed; the replacement starts a new session (the state died with the actor) and counts in
``live_status.restarts``. A camera whose replayed file ended is left stopped.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from tasks.errors import UsageError
from tasks.identity import RunIdentity
from tasks.live.options import Camera, LiveOptions
from tasks.options import ClusterOptions, ModelOptions, ReconstructOptions
from tasks.reconstruction.actors import NAMESPACE, _ray

log = logging.getLogger(__name__)

START_TIMEOUT_S = 600.0  # the first health answer waits for the model to load
HEALTH_TIMEOUT_S = 30.0


class LiveCameraActor:
    """One camera and its model replica."""

    def __init__(self, camera: Camera, root_uri: str, model: ModelOptions, options: ReconstructOptions,
                 live: LiveOptions, torch_threads: int | None = None, restarts: int = 0):
        import torch

        from human3r.body import load_body_model
        from human3r.weights import load_model
        from storage.dataset import init_dataset
        from storage.fs import open_root
        from tasks.live.camera import LiveCamera
        from tasks.live.source import parse_source
        from tasks.reconstruction.video import resolve_device

        if torch_threads:
            torch.set_num_threads(torch_threads)
        network = load_model(model.checkpoint, preset=model.preset, device=resolve_device(model.device),
                             precision=model.precision)
        network = network.compile_blocks() if model.compile else network
        identity = RunIdentity.planned(model, options, weights=network.identity).computed_by(network)
        body = load_body_model(model.body_model) if model.body_model else None
        root = init_dataset(open_root(root_uri))
        # not opened here: a camera that is down at start is retried with back-off, not a dead actor
        spec = parse_source(camera.source, realtime=live.realtime)
        self.camera = LiveCamera(spec, root, network, identity, options=live, camera=camera.name, body_model=body,
                                 restarts=restarts, feed_port=camera.feed_port if camera.feed_port is not None else 0,
                                 log_line=lambda text: log.info(text))
        self.camera.start()

    def health(self) -> dict:
        """The camera's live_status row, plus ``running`` (its thread is alive) and ``error``."""
        return {**self.camera.health(), "running": self.camera.running, "error": self.camera.error}

    def stop(self, timeout: float = 60.0):
        """Commit the open segment, stop, and return the camera's summary (`LiveSummary`)."""
        self.camera.stop(timeout)
        return self.camera.summary()


@dataclasses.dataclass
class _Slot:
    camera: Camera
    actor: object = None
    restarts: int = 0
    started: bool = False  # its model answered once


class CameraPool:
    """One `LiveCameraActor` per camera; `check()` replaces the dead, `stop()` stops them all."""

    def __init__(self, cameras: list[Camera], root_uri: str, model: ModelOptions, options: ReconstructOptions,
                 live: LiveOptions, cluster: ClusterOptions = ClusterOptions()):
        ray = _ray()
        self.root_uri, self.model, self.options, self.live, self.cluster = root_uri, model, options, live, cluster
        gpus = cluster.gpus_per_actor
        if gpus is None:  # one GPU per camera when the cluster has GPUs (as for videos)
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
        self._actor_class = ray.remote(num_gpus=gpus, num_cpus=cluster.cpus_per_actor, max_restarts=0,
                                       max_task_retries=0, max_concurrency=2)(LiveCameraActor)
        self.slots = {c.name: _Slot(c) for c in cameras}
        self.summaries: list = []  # what stop() returned
        for slot in self.slots.values():
            self._start(slot)

    def _start(self, slot: _Slot) -> None:
        name = actor_name(slot.camera.name)
        for _ in range(50):  # a replaced actor's name is free once Ray has seen it die
            try:
                slot.actor = self._actor_class.options(name=name, namespace=NAMESPACE).remote(
                    slot.camera, self.root_uri, self.model, self.options, self.live, self.cluster.torch_threads,
                    slot.restarts)
                break
            except ValueError as err:  # the name is taken
                if slot.actor is None:
                    raise UsageError(f"camera {slot.camera.name} already runs on this Ray cluster (actor {name} in "
                                     f"namespace {NAMESPACE}); stop that deployment first") from err
                time.sleep(0.2)
        else:
            raise RuntimeError(f"the actor of camera {slot.camera.name} could not be restarted: {name} stays taken")
        slot.started = False

    def _replace(self, slot: _Slot, why: str) -> dict:
        ray = _ray()
        log.warning("camera %s: %s; restarting its actor", slot.camera.name, why)
        try:
            ray.kill(slot.actor, no_restart=True)
        except Exception:  # noqa: BLE001 - it is dead already
            pass
        slot.restarts += 1
        self._start(slot)
        return {"camera": slot.camera.name, "state": "restarting", "message": why, "restarts": slot.restarts,
                "running": True}

    def check(self) -> list[dict]:
        """Every camera's health (its live_status row, ``running``, ``error``); a dead actor or a failed camera is
        replaced (its row then says ``restarting``)."""
        ray = _ray()
        from ray.exceptions import GetTimeoutError, RayActorError

        rows = []
        for slot in self.slots.values():
            try:
                row = ray.get(slot.actor.health.remote(),
                              timeout=HEALTH_TIMEOUT_S if slot.started else START_TIMEOUT_S)
            except RayActorError as err:
                rows.append(self._replace(slot, f"actor died ({' '.join(str(err).split())[:200]})"))
                continue
            except GetTimeoutError:
                rows.append(self._replace(slot, "no health answer"))
                continue
            slot.started = True
            if not row["running"] and row.get("error"):
                rows.append(self._replace(slot, f"camera failed: {row['error']}"))
                continue
            rows.append({**row, "restarts": slot.restarts})
        return rows

    def stop(self, timeout: float = 60.0) -> list:
        """Stop every camera (each commits its open segment); their summaries (`LiveSummary`), None for an actor
        that was dead."""
        ray = _ray()
        refs = [slot.actor.stop.remote(timeout) for slot in self.slots.values()]
        summaries = []
        for ref in refs:
            try:
                summaries.append(ray.get(ref, timeout=timeout + 30))
            except Exception:  # noqa: BLE001 - a dead actor has nothing to commit
                summaries.append(None)
        for slot in self.slots.values():
            try:
                ray.kill(slot.actor, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        return summaries


def actor_name(camera: str) -> str:
    """The Ray actor name of a camera's actor (namespace ``human3r``)."""
    return f"live:{camera}"
