"""A benchmark sequence through the network: its frames (image files, in order) streamed as the reference's
evaluation runs them, and what each frame predicts that the metrics read.

As the reference's launch scripts: the benchmark's working size (the network's), TTT3R, a state reset every N
frames (the reset frame processed again to start the next segment, its duplicate dropped), the camera poses chained
across resets, the intrinsics estimated from the camera-frame pointmap (Weiszfeld focal, principal point at the
image centre). Only the outputs the metrics read run (no world-view head, colour or mask).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from tasks.errors import PipelineError

PREFETCH_CUDA = 2  # frames prepared ahead of a GPU forward (as tasks.reconstruction.video)


class FrameReadError(PipelineError):
    """A frame image of a benchmark sequence cannot be read (a missing or corrupt file)."""

    stage = "decode"


@dataclasses.dataclass(frozen=True)
class PredictedFrame:
    """What one frame predicts. n people; H x W working resolution."""

    position: int  # position of the frame in the sequence (0-based)
    c2w: np.ndarray  # (4, 4) float64 camera -> world, chained across resets (the model's world frame)
    K: np.ndarray  # (3, 3) float64 intrinsics at working resolution
    working_wh: tuple[int, int]  # (W, H) of the working image
    rotmat: torch.Tensor  # (n, 53, 3, 3) float32 SMPL-X rotations [global (camera frame), body, hands, jaw]
    betas: torch.Tensor  # (n, 10) float32
    expression: torch.Tensor  # (n, 10) float32
    head_cam: torch.Tensor  # (n, 3) float32 head joint (SMPL-X 15) in the camera frame, metres
    depth: np.ndarray | None = None  # (H, W) float32 camera-frame depth (z of the camera-frame pointmap), metres

    @property
    def n_people(self) -> int:
        return int(self.rotmat.shape[0])


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file; FrameReadError with the path when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as err:
        raise FrameReadError(f"cannot read frame {path}: {' '.join(str(err).split())}") from err


def _frames(images: Sequence[Path], cfg) -> Iterator[tuple[int, object]]:
    from human3r.preprocess import prepare_frame

    for position, path in enumerate(images):
        yield position, prepare_frame(read_rgb(Path(path)), cfg.image_size, cfg.dino.image_res)


def predict_sequence(model, images: Sequence[Path], *, reset_interval: int | None, use_ttt3r: bool = True,
                     with_depth: bool = False, prefetch: int | None = None,
                     progress: Callable[[int], None] | None = None) -> Iterator[PredictedFrame]:
    """Stream `images` through `model` (a `Human3R` from `human3r.load_model`) and yield each frame's prediction,
    in order. `progress(frames_done)` is called after each frame."""
    from human3r.stream import run_stream

    if prefetch is None:
        prefetch = PREFETCH_CUDA if next(model.parameters()).device.type == "cuda" else 0
    stream = run_stream(model, _frames(images, model.cfg), use_ttt3r=use_ttt3r, reset_interval=reset_interval,
                        outputs=frozenset(), prefetch=prefetch)
    for done, sf in enumerate(stream, 1):
        out, people = sf.output, sf.output.humans
        h, w = out.pts3d_self.shape[1:3]
        depth = out.pts3d_self[0, ..., 2].detach().to("cpu", torch.float32).numpy() if with_depth else None
        cpu = lambda t: t[0].detach().to("cpu", torch.float32)  # noqa: E731
        yield PredictedFrame(
            position=int(sf.tag), c2w=sf.c2w.detach().to("cpu", torch.float64).numpy(),
            K=sf.intrinsics.detach().to("cpu", torch.float64).numpy(), working_wh=(int(w), int(h)),
            rotmat=cpu(people.rotmat), betas=cpu(people.betas), expression=cpu(people.expression),
            head_cam=cpu(people.transl), depth=depth,
        )
        if progress is not None:
            progress(done)
