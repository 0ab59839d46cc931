"""Streaming inference over videos: generators that carry each video's recurrent state from frame to frame.

`run_stream(model, frames)` runs one video; `run_streams(model, [frames_a, frames_b, ...])` runs several
independent videos together, one batched forward per step holding the next view of every video that has one
(each keeps its own state, resets, tracks and length; a video that ends leaves the batch). Both reproduce the
reference demo bookkeeping (`prepare_input` / `prepare_output`):
- `reset_interval=R`: input frame i is a reset frame when (i + 1) % R == 0. After it is processed the state and
  pose memory return to their learned initial values, and the same frame is processed again as the first frame of
  the new segment (a "duplicate" view). The duplicate's output is dropped (yielded only with
  `include_duplicates=True`), but it does advance the state and the tracker.
- Poses are chained across segments: `c2w_chained = B @ c2w`, where B is the product of the raw c2w of every
  earlier (kept) reset frame. Scale is not re-aligned between segments.
- Intrinsics are estimated per view from `pts3d_self` by `human3r.geometry.working_intrinsics_from_pointmap`
  (Weiszfeld focal, principal point at (W//2, H//2)), at working resolution.

Each input may carry an opaque tag, `(tag, frame)`, that comes back on its `StreamFrame.tag` (and on its reset
duplicate): whatever the caller needs to know about the frame (its index in the source, its timestamp, the pixels
its rows are coloured from) travels with it, so prefetching, batching and resets never mix frames up.

On a GPU, frames are pinned and copied without blocking, and `prefetch=N` prepares up to N frames per video ahead
in a background thread (decode and preprocessing overlap the forward).

Memory: only the current state, the tracker memory and one frame's outputs are alive; nothing accumulates per frame
(the tracker keeps unmatched tracks like the reference; cap them with `TrackerConfig.max_tracks`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from human3r.decoder import State
from human3r.errors import ConfigError
from human3r.geometry import working_intrinsics_from_pointmap
from human3r.outputs import OPTIONAL_OUTPUTS, FrameOutput
from human3r.preprocess import Frame, prepare_frame


@dataclass
class StreamFrame:
    """One processed view."""

    index: int  # input frame index
    view: int  # processed-view index (counts reset duplicates)
    output: FrameOutput  # network outputs (c2w relative to the current segment's first frame)
    c2w: torch.Tensor  # (4, 4) camera-to-world chained across resets
    intrinsics: torch.Tensor  # (3, 3) K at working resolution: [[f, 0, W//2], [0, f, H//2], [0, 0, 1]], f >= 0
    reset: bool  # the state is re-initialised after this view
    duplicate: bool  # this view re-processes a reset frame to start a segment (dropped by default)
    state: State  # recurrent state after this view's update (before a reset re-initialises it)
    tag: Any = None  # the tag the input came with (`(tag, frame)`), None for an untagged input


Input = np.ndarray | Frame | tuple[Any, np.ndarray | Frame]  # an RGB frame, a prepared one, or either with a tag


def run_stream(model, frames: Iterable[Input], *, use_ttt3r: bool = False,
               reset_interval: int | None = None, include_duplicates: bool = False,
               device: torch.device | str | None = None, outputs: Collection[str] = OPTIONAL_OUTPUTS,
               prefetch: int = 0) -> Iterator[StreamFrame]:
    """Run `model` (a `Human3R`) over `frames` (uint8 RGB arrays or preprocessed `Frame`s, each optionally as
    `(tag, frame)`: the tag comes back on its `StreamFrame`), one view at a time.

    Yields a `StreamFrame` per kept view (plus reset duplicates when `include_duplicates`). Each step runs under
    `torch.inference_mode()` (not held across yields); tensors stay on `device` (default: the model's device).
    Every view, duplicates included, is one `model(frame, state)` call in view order, so forward hooks on the
    model (`human3r.parity.Recorder`) line up with `StreamFrame.view`. `outputs`: the optional outputs to compute
    (see `Human3R.forward`). `prefetch`: frames prepared ahead in a background thread (0 = none; then `frames` is
    consumed lazily, in step with the yields).
    """
    for _, view in run_streams(model, [frames], use_ttt3r=use_ttt3r, reset_interval=reset_interval,
                               include_duplicates=include_duplicates, device=device, outputs=outputs,
                               prefetch=prefetch):
        yield view


def run_streams(model, videos: Sequence[Iterable[Input]], *, use_ttt3r: bool = False,
                reset_interval: int | None | Sequence[int | None] = None, include_duplicates: bool = False,
                device: torch.device | str | None = None, outputs: Collection[str] = OPTIONAL_OUTPUTS,
                prefetch: int = 0) -> Iterator[tuple[int, StreamFrame]]:
    """Run `model` over several independent videos at once: yields `(video number, StreamFrame)`.

    Each step is one batched forward over the next view of every video that still has one, so the videos may
    differ in length, people and reset schedule (`reset_interval`: one value for all, or one per video); a video's
    views come out in its own order, exactly as `run_stream` would give them (to float rounding: batched matmuls
    may round differently). The frames of every video must have the same working size.
    """
    n = len(videos)
    intervals = list(reset_interval) if isinstance(reset_interval, Sequence) else [reset_interval] * n
    if len(intervals) != n:
        raise ConfigError(f"reset_interval: {len(intervals)} values for {n} videos; give one per video or one")
    for ri in intervals:
        if ri is not None and (not isinstance(ri, int) or ri <= 0):
            raise ConfigError(f"reset_interval must be a positive int or None, got {ri!r}")
    cfg = model.cfg
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    with torch.inference_mode():  # never held across a yield: the caller's grad mode stays untouched
        tracks = [_Video(_prefetched(frames, cfg, device, prefetch), ri, model.initial_state(), device)
                  for frames, ri in zip(videos, intervals, strict=True)]
    try:
        while True:
            batch = [(k, v, *step) for k, v in enumerate(tracks) if (step := v.next_view()) is not None]
            if not batch:
                return
            with torch.inference_mode():
                frame = Frame(torch.cat([f.img for _, _, _, f, _ in batch]),
                              torch.cat([f.img_mhmr for _, _, _, f, _ in batch]))
                outs, states = model(frame, [v.state for _, v, *_ in batch], ttt3r=use_ttt3r, outputs=outputs)
                views = [(k, v.advance(model, tag, f, dup, out, st))
                         for (k, v, tag, f, dup), out, st in zip(batch, outs, states, strict=True)]
            del frame, outs, states, batch
            for k, view in views:
                if include_duplicates or not view.duplicate:
                    yield k, view
            del views
    finally:
        for v in tracks:
            v.close()


class _Video:
    """One video's bookkeeping: its frames, state, reset schedule and the pose chained across segments."""

    def __init__(self, frames: Iterator[tuple[Any, Frame]], reset_interval: int | None, state: State,
                 device: torch.device):
        self.frames, self.reset_interval, self.state = frames, reset_interval, state
        self.base = torch.eye(4, device=device)  # product of the raw poses of the reset frames so far
        self.index, self.view = -1, 0
        self.again: tuple[Any, Frame] | None = None  # a reset frame (and its tag), processed again next as its
        # segment's first view

    def next_view(self) -> tuple[Any, Frame, bool] | None:
        """(tag, frame, is a duplicate) of this video's next view, or None at its end."""
        if self.again is not None:
            return *self.again, True
        item = next(self.frames, None)
        if item is None:
            return None
        self.index += 1
        return *item, False

    def advance(self, model, tag: Any, frame: Frame, duplicate: bool, out: FrameOutput, state: State
                ) -> StreamFrame:
        """Record a processed view: chained pose, intrinsics, and the state (re-initialised after a reset)."""
        ri = self.reset_interval
        reset = not duplicate and ri is not None and (self.index + 1) % ri == 0
        intrinsics = working_intrinsics_from_pointmap(out.pts3d_self)[0]
        view = StreamFrame(self.index, self.view, out, self.base @ out.c2w[0], intrinsics, reset, duplicate, state,
                           tag)
        self.view += 1
        self.again = (tag, frame) if reset else None
        if reset:
            self.base = self.base @ out.c2w[0]
            self.state = model.reset_state(state)
        else:
            self.state = state
        return view

    def close(self) -> None:
        close = getattr(self.frames, "close", None)
        if close is not None:
            close()


def _prefetched(frames: Iterable[Input], cfg, device: torch.device, ahead: int) -> Iterator[tuple[Any, Frame]]:
    """(tag, frame) pairs, the frames prepared and moved to `device` (pinned + non-blocking copies on CUDA),
    `ahead` of time in a thread. The tag rides with its frame through the queue."""
    cuda = device.type == "cuda"

    def prepare(item: Input) -> tuple[Any, Frame]:
        tag, frame = item if isinstance(item, tuple) else (None, item)
        if not isinstance(frame, Frame):
            frame = prepare_frame(frame, cfg.image_size, cfg.dino.image_res)
        return tag, frame.pin_memory() if cuda else frame

    source = map(prepare, frames) if ahead <= 0 else _in_thread(iter(frames), prepare, ahead)
    try:
        for tag, frame in source:
            yield tag, frame.to(device, non_blocking=cuda)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


_END = object()


def _in_thread(items: Iterator, fn: Callable, size: int) -> Iterator:
    """`map(fn, items)` computed up to `size` items ahead in a daemon thread; stops it when closed."""
    buffer: queue.Queue = queue.Queue(size)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(fn(item)):
                    return
            put(_END)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, raised there
            put(_Failed(err))

    thread = threading.Thread(target=work, name="human3r-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
