"""One model shared by several threads that each stream a video: their steps meet and run as one batched forward.

`run_streams` batches videos it iterates itself. When each video has its own thread (a server, or a Ray actor
taking k videos at once, each reconstructed by the unchanged per-video code), wrap the model in `SharedModel`
and give every thread the wrapper: it behaves like the model (`cfg`, `initial_state`, `run_stream(shared, ...)`),
and each call `shared(frame, state, ...)` waits until every member thread has its next frame in (or `wait_s`
passes), then one thread runs the batch for all. Calls with different options or frame sizes run in separate
batches. A thread counts as a member inside `with shared.member():`; other callers are not waited for.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

import torch

from human3r.decoder import State
from human3r.outputs import OPTIONAL_OUTPUTS, FrameOutput
from human3r.preprocess import Frame


@dataclass
class _Call:
    frame: Frame  # (b, ...) frames of the caller's b videos
    states: list[State]  # their states
    key: tuple  # calls with equal keys can share a forward
    since: float  # when it arrived (time.monotonic)
    result: tuple[list[FrameOutput], list[State]] | None = None
    error: BaseException | None = None


class SharedModel:
    """A `Human3R` stepped in batches for several threads at once (see the module docstring).

    wait_s: how long a call waits for the other members' frames before its batch runs without them (a member
    busy decoding or writing rows does not stall the others for longer than this).
    """

    def __init__(self, model, wait_s: float = 0.2):
        self.model = model
        self.wait_s = wait_s
        self.batches = 0  # forwards run (for tests and logs)
        self._cond = threading.Condition()
        self._pending: list[_Call] = []
        self._members = 0
        self._running = False

    def __getattr__(self, name: str):  # cfg, identity, initial_state, reset_state, parameters, ...
        return getattr(self.model, name)

    @contextlib.contextmanager
    def member(self) -> Iterator[SharedModel]:
        """Count the calling thread as streaming a video until the block ends (batches wait for its frames)."""
        with self._cond:
            self._members += 1
        try:
            yield self
        finally:
            with self._cond:
                self._members -= 1
                self._cond.notify_all()

    def __call__(self, frame: Frame, state: State | Sequence[State], *, ttt3r: bool = False,
                 outputs: Collection[str] = OPTIONAL_OUTPUTS
                 ) -> tuple[FrameOutput, State] | tuple[list[FrameOutput], list[State]]:
        """One step, as `Human3R.forward(frame, state)` (one state or a list), run in a batch with the other
        members' steps."""
        single = isinstance(state, State)
        key = (ttt3r, frozenset(outputs), tuple(frame.img.shape[1:]), tuple(frame.img_mhmr.shape[1:]),
               frame.img.device, torch.is_inference_mode_enabled())
        call = _Call(frame, [state] if single else list(state), key, time.monotonic())
        with self._cond:
            self._pending.append(call)
            self._cond.notify_all()
            while call.result is None and call.error is None:
                lead = self._pending[0] if self._pending and not self._running else None
                if lead is call:
                    full = len(self._pending) >= max(self._members, 1)
                    late = time.monotonic() - call.since >= self.wait_s
                    if full or late:
                        self._run_batch()
                        continue
                self._cond.wait(timeout=max(0.001, self.wait_s - (time.monotonic() - call.since)))
        if call.error is not None:
            raise call.error
        outs, states = call.result
        return (outs[0], states[0]) if single else (outs, states)

    def _run_batch(self) -> None:
        """Called with the lock held by the oldest pending call's thread: run every pending call that shares its
        key, lock released during the forward."""
        key = self._pending[0].key
        batch = [c for c in self._pending if c.key == key]
        self._pending = [c for c in self._pending if c.key != key]
        self._running = True
        self._cond.release()
        try:
            frame = Frame(torch.cat([c.frame.img for c in batch]), torch.cat([c.frame.img_mhmr for c in batch]))
            outs, states = self.model(frame, [s for c in batch for s in c.states], ttt3r=key[0], outputs=key[1])
            results, error, start = [], None, 0
            for c in batch:
                n = len(c.states)
                results.append((outs[start:start + n], states[start:start + n]))
                start += n
        except BaseException as err:  # noqa: BLE001 - every caller of the batch re-raises it
            results, error = [None] * len(batch), err
        finally:
            self._cond.acquire()
        for call, result in zip(batch, results, strict=True):
            call.result, call.error = result, error
        self.batches += 1
        self._running = False
        self._cond.notify_all()
