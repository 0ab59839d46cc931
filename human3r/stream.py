"""Streaming inference over a video: a generator that carries the recurrent state from frame to frame.

Reproduces the reference demo bookkeeping (`prepare_input` / `prepare_output`):
- `reset_interval=R`: input frame i is a reset frame when (i + 1) % R == 0. After it is processed the state and
  pose memory return to their learned initial values, and the same frame is processed again as the first frame of
  the new segment (a "duplicate" view). The duplicate's output is dropped (yielded only with
  `include_duplicates=True`), but it does advance the state and the tracker.
- Poses are chained across segments: `c2w_chained = B @ c2w`, where B is the product of the raw c2w of every
  earlier (kept) reset frame. Scale is not re-aligned between segments.
- Intrinsics are estimated per view from `pts3d_self` by `human3r.geometry.working_intrinsics_from_pointmap`
  (Weiszfeld focal, principal point at (W//2, H//2)), at working resolution.

Memory: only the current state, the tracker memory and one frame's outputs are alive; nothing accumulates per frame
(the tracker keeps unmatched tracks like the reference; cap them with `TrackerConfig.max_tracks`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from human3r.decoder import State
from human3r.geometry import working_intrinsics_from_pointmap
from human3r.outputs import FrameOutput
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


def run_stream(model, frames: Iterable[np.ndarray | Frame], *, use_ttt3r: bool = False,
               reset_interval: int | None = None, include_duplicates: bool = False,
               device: torch.device | str | None = None) -> Iterator[StreamFrame]:
    """Run `model` (a `Human3R`) over `frames` (uint8 RGB arrays or preprocessed `Frame`s), one view at a time.

    Yields a `StreamFrame` per kept view (plus reset duplicates when `include_duplicates`). Each step runs under
    `torch.inference_mode()` (not held across yields); tensors stay on `device` (default: the model's device).
    Every view, duplicates included, is one `model(frame, state)` call in view order, so forward hooks on the
    model (`human3r.parity.Recorder`) line up with `StreamFrame.view`.
    """
    if reset_interval is not None and reset_interval <= 0:
        from human3r.errors import ConfigError

        raise ConfigError(f"reset_interval must be a positive int or None, got {reset_interval!r}")
    cfg = model.cfg
    if device is None:
        device = next(model.parameters()).device
    with torch.inference_mode():  # never held across a yield: the caller's grad mode stays untouched
        state: State = model.initial_state()
    base = torch.eye(4, device=device)
    view = 0
    for i, frame in enumerate(frames):
        if not isinstance(frame, Frame):
            frame = prepare_frame(frame, cfg.image_size, cfg.dino.image_res)
        frame = frame.to(device)
        reset = reset_interval is not None and (i + 1) % reset_interval == 0
        kept, state = _step(model, frame, state, use_ttt3r, base, i, view, reset, duplicate=False)
        yield kept
        view += 1
        if reset:
            with torch.inference_mode():
                base = base @ kept.output.c2w[0]  # product of the raw poses of the reset frames so far
                state = model.reset_state(state)
            del kept
            dup, state = _step(model, frame, state, use_ttt3r, base, i, view, False, duplicate=True)
            if include_duplicates:
                yield dup
            view += 1
            del dup
        else:
            del kept


def _step(model, frame: Frame, state: State, ttt3r: bool, base: torch.Tensor, index: int, view: int, reset: bool,
          duplicate: bool) -> tuple[StreamFrame, State]:
    with torch.inference_mode():
        out, state = model(frame, state, ttt3r=ttt3r)
        intrinsics = working_intrinsics_from_pointmap(out.pts3d_self)[0]
        c2w = base @ out.c2w[0]
    return StreamFrame(index, view, out, c2w, intrinsics, reset, duplicate, state), state
