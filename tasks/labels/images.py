"""JPEG frames or person crops cut from the source videos with PyAV, for the image-label pairs of a build.

`cut_images` decodes one source video once (`tasks.reconstruction.decode.FrameReader`: same frame indices, timestamps
and display rotation as the reconstruction) up to the last frame it needs, and writes each wanted frame as a full-frame
JPEG or as crops. A source that is gone, changed (another size than the run read) or unreadable is reported, not
raised: the labels keep ``image_path`` null for it.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from tasks.errors import PipelineError, UsageError
from tasks.options import DecodeOptions
from tasks.reconstruction.decode import FrameReader


@dataclasses.dataclass(frozen=True)
class Cut:
    """One image to write: the frame, where (relative to the build folder), and the crop box (None: full frame)."""

    frame_idx: int
    path: str
    box: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 in source pixels


def crop_box(bbox: np.ndarray | None, margin: float, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The keypoint box enlarged by `margin` of its size per side, clipped to the frame, as whole pixels (None when
    there is no box or it is empty)."""
    if bbox is None:
        return None
    x0, y0, x1, y1 = (float(v) for v in bbox)
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    box = (max(0, int(np.floor(x0 - dx))), max(0, int(np.floor(y0 - dy))),
           min(width, int(np.ceil(x1 + dx))), min(height, int(np.ceil(y1 + dy))))
    return box if box[2] > box[0] and box[3] > box[1] else None


def cut_images(source_uri: str, expected_size: int | None, cuts: list[Cut], out_dir: str | os.PathLike,
               quality: int = 90) -> tuple[int, str | None]:
    """Write `cuts` from the video at `source_uri`; returns (images written, why the rest could not be, or None)."""
    from PIL import Image

    from storage.errors import MediaError
    from storage.media import locate

    if not cuts:
        return 0, None
    try:
        size = locate(source_uri).size_bytes
    except (OSError, MediaError, UsageError) as err:
        return 0, f"source unreadable: {err}"
    if expected_size is not None and size != expected_size:
        return 0, f"source changed since it was reconstructed ({size} bytes, the run read {expected_size})"
    by_frame: dict[int, list[Cut]] = {}
    for cut in cuts:
        by_frame.setdefault(cut.frame_idx, []).append(cut)
    last, written = max(by_frame), 0
    try:
        with FrameReader(source_uri, DecodeOptions(max_side=1 << 16)) as reader:
            for frame in reader:
                for cut in by_frame.get(frame.index, ()):
                    image = Image.fromarray(frame.rgb)
                    if cut.box is not None:
                        image = image.crop(cut.box)
                    target = os.path.join(out_dir, cut.path)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    image.save(target, format="JPEG", quality=quality)
                    written += 1
                if frame.index >= last:
                    break
    except (OSError, PipelineError) as err:
        return written, f"source unreadable: {err}"
    missing = len(cuts) - written
    return written, (f"{missing} frames not found in the source" if missing else None)
