"""Ray actors that hold Human3R: load the model once, stream one video per call, write rows, return a summary.

`Human3RActor` is a thin shell around `tasks.reconstruct.reconstruct_video` (plain Python, tested without Ray).
`ActorPool` keeps `size` long-lived actors and hands each video to a free one from any thread (Prefect runs one
task per video in a thread pool). When an actor dies mid-video (killed, out of memory) it is replaced and the video
retried; nothing of the dead attempt is visible because the dataset commits a video atomically, and a video is
never written twice because the commit pointer is replaced, not appended. A video that exceeds its time limit is
recorded as a failure (stage "timeout") and its actor is replaced.

The GPU path: each actor asks Ray for `num_gpus` (fractional values pack several actors on one GPU); Ray sets
CUDA_VISIBLE_DEVICES for it and the actor picks `cuda` when it sees a GPU, the CPU otherwise.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue

log = logging.getLogger(__name__)

NAMESPACE = "human3r"


def _ray():
    try:
        import ray
    except ImportError as err:  # pragma: no cover
        raise ImportError("the archive pipeline needs Ray: pip install 'ray[default]==2.60.0'") from err
    return ray


@dataclasses.dataclass(frozen=True)
class ActorSpec:
    """What every actor of a pool loads, and what it reserves on the cluster."""

    checkpoint: str = "auto"  # weights spec (see `human3r weights resolve --help`)
    preset: str | None = None
    body_model: str | None = None  # SMPLX_NEUTRAL.npz path on the actor's node
    device: str = "auto"  # auto = the GPU Ray assigned, else CPU
    num_gpus: float = 0.0  # GPUs per actor (0.5 packs two actors per GPU)
    num_cpus: float = 1.0  # CPUs per actor (keep the pool's total below the cluster's, or decoding starves)
    torch_threads: int | None = None  # intra-op threads per actor; None = torch's default


class Human3RActor:
    """One model replica. Methods run one at a time (Ray actors are single-threaded by default)."""

    def __init__(self, spec: ActorSpec):
        import torch

        from human3r.body import load_body_model
        from human3r.weights import load_model
        from tasks.reconstruct import resolve_device

        if spec.torch_threads:
            torch.set_num_threads(spec.torch_threads)
        self.device = resolve_device(spec.device)
        self.model, self.identity = load_model(spec.checkpoint, preset=spec.preset, device=self.device)
        self.body_model = load_body_model(spec.body_model) if spec.body_model else None
        self.calls = 0

    def info(self) -> dict:
        ray = _ray()
        return {"pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id(), "device": str(self.device),
                "model_version": self.identity.model_version, "preset": self.identity.preset,
                "checkpoint_sha256": self.identity.sha256, "untrained": self.identity.is_untrained,
                "calls": self.calls}

    def reconstruct(self, path: str, root_uri: str, options: dict, force: bool = False) -> dict:
        from storage.fs import open_root
        from tasks.reconstruct import ReconstructOptions, reconstruct_video

        self.calls += 1
        summary = reconstruct_video(path, open_root(root_uri), self.model, self.identity,
                                    options=ReconstructOptions.from_dict(options), body_model=self.body_model,
                                    force=force)
        out = summary.to_dict()
        out["node_id"] = _ray().get_runtime_context().get_node_id()
        out["pid"] = os.getpid()
        return out


def connect(address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Join the cluster at `address` ('auto', 'host:port', 'ray://...'), or start a local one when None.

    Always explicit: a None address starts a private local cluster even if RAY_ADDRESS is set elsewhere.
    """
    ray = _ray()
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), num_gpus=num_gpus, namespace=NAMESPACE,
                 include_dashboard=False, log_to_driver=False)


class _Slot:
    """One actor of the pool; replaced when it dies."""

    def __init__(self, pool: ActorPool, index: int):
        self.pool, self.index = pool, index
        self.actor = None
        self.generation = 0
        self.start()

    def start(self) -> None:
        self.generation += 1
        self.actor = self.pool._actor_class.remote(self.pool.spec)

    def replace(self) -> None:
        ray = _ray()
        try:
            ray.kill(self.actor, no_restart=True)
        except Exception:  # noqa: BLE001 - it is dead already
            pass
        self.pool.replacements += 1
        self.start()


class ActorPool:
    """`size` Human3R actors shared by any number of threads: `run(path)` borrows a free actor for one video."""

    def __init__(self, spec: ActorSpec, size: int = 1, *, max_attempts: int = 3, video_timeout_s: float = 3600.0):
        if size < 1:
            raise ValueError(f"pool size must be >= 1, got {size}")
        ray = _ray()
        self.spec, self.size = spec, size
        self.max_attempts, self.video_timeout_s = max_attempts, video_timeout_s
        self.replacements = 0
        self._actor_class = ray.remote(num_gpus=spec.num_gpus, num_cpus=spec.num_cpus, max_restarts=0,
                                       max_task_retries=0)(Human3RActor)
        self._free: queue.Queue[_Slot] = queue.Queue()
        self._slots = [_Slot(self, i) for i in range(size)]
        for slot in self._slots:
            self._free.put(slot)

    def info(self) -> list[dict]:
        """Each actor's pid, node, device and model identity (waits until every model is loaded)."""
        ray = _ray()
        return ray.get([s.actor.info.remote() for s in self._slots])

    def run(self, path: str, root_uri: str, options: dict, *, force: bool = False) -> dict:
        """Reconstruct one video on a free actor; returns its summary dict (status ok / skipped / failed)."""
        ray = _ray()
        from ray.exceptions import GetTimeoutError, RayActorError

        slot = self._free.get()
        try:
            last_error = ""
            for attempt in range(1, self.max_attempts + 1):
                ref = slot.actor.reconstruct.remote(path, root_uri, options, force)
                try:
                    result = ray.get(ref, timeout=self.video_timeout_s)
                    result["attempts"] = attempt
                    return result
                except GetTimeoutError:
                    log.warning("video %s exceeded %.0f s; replacing its actor", path, self.video_timeout_s)
                    slot.replace()
                    return _record_failure(root_uri, path, "timeout", "Timeout",
                                           f"no result after {self.video_timeout_s:.0f} s", attempt)
                except RayActorError as err:
                    last_error = " ".join(str(err).split())[:300]
                    log.warning("actor died on %s (attempt %d/%d); replacing it", path, attempt, self.max_attempts)
                    slot.replace()
            return _record_failure(root_uri, path, "inference", "ActorDied",
                                   f"the actor died {self.max_attempts} times ({last_error})", self.max_attempts)
        finally:
            self._free.put(slot)

    def shutdown(self) -> None:
        ray = _ray()
        for slot in self._slots:
            try:
                ray.kill(slot.actor, no_restart=True)
            except Exception:  # noqa: BLE001
                pass


def _record_failure(root_uri: str, path: str, stage: str, error_type: str, message: str, attempts: int) -> dict:
    from storage.fs import open_root
    from storage.parquet import write_failure
    from tasks.reconstruct import VideoSummary

    write_failure(open_root(root_uri), source_uri=path, stage=stage, error=message, error_type=error_type)
    return {**VideoSummary(path, "failed", stage=stage, message=message).to_dict(), "attempts": attempts}
