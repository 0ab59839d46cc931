"""Ray actors that hold Human3R: load the model once, stream one video (or one benchmark sequence) per call, write
rows, return a summary.

`Human3RActor` is a thin shell around `tasks.reconstruction.video.reconstruct_video` (plain Python, tested without
Ray). Each video comes with the run's identity (`tasks.identity.RunIdentity`, planned by the driver); the actor
checks it against the network it holds and records the precision that network computes in.
`ActorPool` keeps `num_actors` long-lived actors and hands each video (`run`) or benchmark sequence (`evaluate`:
`tasks.evaluation.runner.evaluate_sequence`) to a free one from any thread (Prefect runs one task per unit in a
thread pool). When an actor dies mid-video (killed, out of memory) it is replaced and the video
retried; nothing of the dead attempt is visible because the dataset commits a video atomically, and a video is
never written twice because the commit pointer is replaced, not appended. A video that exceeds its time limit is
recorded as a failure (stage "timeout") and its actor is replaced.

The GPU path: each actor asks Ray for `num_gpus` (fractional values pack several actors on one GPU); Ray sets
CUDA_VISIBLE_DEVICES for it and the actor picks `cuda` when it sees a GPU, the CPU otherwise. With
`videos_per_actor=k` an actor takes k videos at once (Ray `max_concurrency=k`, one thread each, the per-video code
unchanged) and their frames meet in batched forwards (`human3r.batching.SharedModel`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import threading

from tasks.errors import ActorDied, VideoTimeout
from tasks.identity import RunIdentity
from tasks.options import ClusterOptions, ModelOptions
from tasks.reconstruction.decode import VideoProbe
from tasks.reconstruction.outcomes import VideoSummary, record_failure

log = logging.getLogger(__name__)

NAMESPACE = "human3r"


def _ray():
    try:
        import ray
    except ImportError as err:  # pragma: no cover
        raise ImportError("the archive pipeline needs Ray: pip install 'ray[default]==2.60.0'") from err
    return ray


class Human3RActor:
    """One model replica. Methods run one at a time (Ray actors are single-threaded by default)."""

    def __init__(self, model: ModelOptions, torch_threads: int | None = None, videos_at_once: int = 1):
        import torch

        from human3r.batching import SharedModel
        from human3r.body import load_body_model
        from human3r.weights import load_model
        from tasks.reconstruction.video import resolve_device

        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.device = resolve_device(model.device)
        self.model = load_model(model.checkpoint, preset=model.preset, device=self.device,
                                precision=model.precision)
        if model.compile:
            self.model.compile_blocks()
        # the options carry the body model resolved where they were built ($HUMAN3R_BODY_MODEL included): this
        # machine's environment is not asked again
        self.body_model = load_body_model(model.body_model) if model.body_model else None
        self.shared = SharedModel(self.model) if videos_at_once > 1 else None
        self.calls = 0
        self._roots: dict = {}  # root uri -> Root with its dataset marker checked (read once per actor, not per video)
        self._bodies: dict = {}  # (SMPL files folder, GT body model) -> EvalBodies (evaluation)
        self.body_model_path = model.body_model

    def info(self) -> dict:
        identity = self.model.identity
        return {"pid": os.getpid(), "node_id": _ray().get_runtime_context().get_node_id(), "device": str(self.device),
                "model_version": identity.model_version, "preset": identity.preset,
                "checkpoint_sha256": identity.sha256, "untrained": identity.is_untrained, "calls": self.calls,
                "precision": str(self.model.compute_dtype).removeprefix("torch."),
                "body_model": str(self.body_model.path) if self.body_model else None,
                "batched_forwards": self.shared.batches if self.shared else None}

    def reconstruct(self, video: VideoProbe | str, root_uri: str, identity: RunIdentity,
                    force: bool = False) -> VideoSummary:
        from storage.dataset import init_dataset
        from storage.fs import open_root
        from tasks.reconstruction.video import reconstruct_video

        self.calls += 1
        root = self._roots.get(root_uri) or open_root(root_uri)
        if not root.checked:
            try:
                root = self._roots[root_uri] = init_dataset(root)
            except Exception:  # noqa: BLE001 - reconstruct_video meets it again and records the video's failure
                log.debug("dataset at %s not usable", root_uri, exc_info=True)
        identity = identity.computed_by(self.model)  # 'auto' precision: what this machine computes in
        member = self.shared.member() if self.shared else contextlib.nullcontext(self.model)
        with member as model:
            summary = reconstruct_video(video, root, model, identity, body_model=self.body_model, force=force)
        return dataclasses.replace(summary, node_id=_ray().get_runtime_context().get_node_id())

    def evaluate(self, unit, root_uri: str, force: bool = False):
        """Evaluate one benchmark sequence (`tasks.evaluation.runner.SequenceUnit`) with this replica's network and
        body model; the SMPL files are loaded once per folder and benchmark kind. Returns its `SequenceOutcome`."""
        from storage.dataset import init_dataset
        from storage.fs import open_root
        from tasks.evaluation.runner import evaluate_sequence, record_sequence_failure

        self.calls += 1
        root = self._roots.get(root_uri) or open_root(root_uri)
        try:
            root = self._roots[root_uri] = init_dataset(root)
            bodies = self._eval_bodies(unit)
        except Exception as err:  # noqa: BLE001 - the sequence fails with its reason, the others go on
            outcome = record_sequence_failure(unit, root, err)
        else:
            member = self.shared.member() if self.shared else contextlib.nullcontext(self.model)
            with member as model:
                outcome = evaluate_sequence(unit, root, model, body_model=self.body_model, bodies=bodies, force=force)
        return dataclasses.replace(outcome, node_id=_ray().get_runtime_context().get_node_id())

    def _eval_bodies(self, unit):
        """The SMPL files a human benchmark sequence needs (None for the others), loaded once per folder and
        ground-truth body model."""
        from tasks.evaluation.benchmarks import benchmark_protocol
        from tasks.evaluation.bodies import load_eval_bodies

        bp = benchmark_protocol(unit.benchmark)
        if bp.kind != "human":
            return None
        key = (unit.smpl_files, bp.gt_body_model)
        if key not in self._bodies:
            self._bodies[key] = load_eval_bodies(unit.smpl_files, bp, self.body_model_path)
        return self._bodies[key]


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
        self._lock = threading.Lock()
        self.start()

    def start(self) -> None:
        self.generation += 1
        cluster = self.pool.cluster
        self.actor = self.pool._actor_class.remote(self.pool.model, cluster.torch_threads, cluster.videos_per_actor)

    def replace(self, generation: int | None = None) -> None:
        """Replace the actor, unless it was replaced since `generation` (several videos may see one death)."""
        with self._lock:
            if generation is not None and generation != self.generation:
                return
            ray = _ray()
            try:
                ray.kill(self.actor, no_restart=True)
            except Exception:  # noqa: BLE001 - it is dead already
                pass
            self.pool.replacements += 1
            self.start()


class ActorPool:
    """`cluster.num_actors` Human3R replicas shared by any number of threads: `run(video)` borrows a free one."""

    def __init__(self, model: ModelOptions, cluster: ClusterOptions = ClusterOptions(), *, max_attempts: int = 3):
        ray = _ray()
        self.model, self.cluster = model, cluster
        self.max_attempts = max_attempts
        self.video_timeout_s = cluster.video_timeout_s
        self.replacements = 0
        gpus = cluster.gpus_per_actor
        if gpus is None:  # one GPU per replica when the cluster has GPUs
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
        self._actor_class = ray.remote(num_gpus=gpus, num_cpus=cluster.cpus_per_actor, max_restarts=0,
                                       max_task_retries=0, max_concurrency=cluster.videos_per_actor)(Human3RActor)
        self._free: queue.Queue[_Slot] = queue.Queue()  # each actor once per video it takes at a time
        self._slots = [_Slot(self, i) for i in range(cluster.num_actors)]
        for _ in range(cluster.videos_per_actor):
            for slot in self._slots:
                self._free.put(slot)

    def info(self) -> list[dict]:
        """Each actor's pid, node, device and model identity (waits until every model is loaded)."""
        ray = _ray()
        return ray.get([s.actor.info.remote() for s in self._slots])

    def run(self, video: VideoProbe | str, root_uri: str, identity: RunIdentity, *,
            force: bool = False) -> VideoSummary:
        """Reconstruct one video on a free actor; returns its summary (status ok / skipped / failed)."""
        from storage.fs import open_root

        path = video.path if isinstance(video, VideoProbe) else video

        def failed(err, attempts: int) -> VideoSummary:
            return record_failure(open_root(root_uri), path, err, attempts=attempts)

        summary, attempts = self.call("reconstruct", (video, root_uri, identity, force), what=f"video {path}",
                                      on_failure=failed)
        return dataclasses.replace(summary, attempts=attempts)

    def evaluate(self, unit, root_uri: str, *, force: bool = False):
        """Evaluate one benchmark sequence (`tasks.evaluation.runner.SequenceUnit`) on a free actor; returns its
        outcome (status ok / skipped / failed)."""
        from storage.fs import open_root
        from tasks.evaluation.runner import record_sequence_failure

        def failed(err, attempts: int):
            return record_sequence_failure(unit, open_root(root_uri), err, attempts=attempts)

        outcome, attempts = self.call("evaluate", (unit, root_uri, force),
                                      what=f"sequence {unit.benchmark} {unit.name}", on_failure=failed)
        return dataclasses.replace(outcome, attempts=attempts)

    def call(self, method: str, args: tuple, *, what: str, on_failure):
        """``(result, attempts)`` of `method(*args)` on a free actor: an actor that dies is replaced and the call
        retried (up to `max_attempts`); a call that exceeds `cluster.video_timeout_s` has its actor replaced and is
        not retried. Both end in ``on_failure(error, attempts)`` (a `PipelineError`: `VideoTimeout`, `ActorDied`),
        whose value is returned as the result."""
        ray = _ray()
        from ray.exceptions import GetTimeoutError, RayActorError

        slot = self._free.get()
        try:
            last_error = ""
            for attempt in range(1, self.max_attempts + 1):
                generation = slot.generation
                ref = getattr(slot.actor, method).remote(*args)
                try:
                    return ray.get(ref, timeout=self.video_timeout_s), attempt
                except GetTimeoutError:
                    log.warning("%s exceeded %.0f s; replacing its actor", what, self.video_timeout_s)
                    slot.replace(generation)
                    return on_failure(VideoTimeout(f"no result after {self.video_timeout_s:.0f} s"), attempt), attempt
                except RayActorError as err:
                    last_error = " ".join(str(err).split())[:300]
                    log.warning("actor died on %s (attempt %d/%d); replacing it", what, attempt, self.max_attempts)
                    slot.replace(generation)
            err = ActorDied(f"the actor died {self.max_attempts} times ({last_error})")
            return on_failure(err, self.max_attempts), self.max_attempts
        finally:
            self._free.put(slot)

    def shutdown(self) -> None:
        ray = _ray()
        for slot in self._slots:
            try:
                ray.kill(slot.actor, no_restart=True)
            except Exception:  # noqa: BLE001
                pass


@contextlib.contextmanager
def actor_pool(model: ModelOptions, cluster: ClusterOptions):
    """Connect to (or start) Ray and hold `cluster.num_actors` model replicas for the duration of the block."""
    import ray

    started_here = not ray.is_initialized() and not cluster.ray_address
    connect(cluster.ray_address)
    pool = ActorPool(model, cluster)
    try:
        pool.info()  # every model loaded before the first video is handed out
        yield pool
    finally:
        pool.shutdown()
        if started_here:
            ray.shutdown()
