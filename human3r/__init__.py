"""Human3R: streaming 4D humans + scene reconstruction (CUT3R + Multi-HMR prompt tokens -> SMPL-X).

Importing the package pulls in torch and numpy only. The way in: `model = human3r.load_model("auto")`.
Public names: `load_model`, `Human3R`, `Human3RConfig`, `FrameOutput`, `Humans`, `State`, `Frame`, `prepare_frame`,
`run_stream`, `run_streams` (several videos in one batched forward), `StreamFrame`.
"""

from human3r.config import Human3RConfig
from human3r.decoder import State
from human3r.model import Human3R
from human3r.outputs import FrameOutput, Humans
from human3r.preprocess import Frame, prepare_frame
from human3r.stream import StreamFrame, run_stream, run_streams
from human3r.weights import load_model

__all__ = [
    "Frame",
    "FrameOutput",
    "Human3R",
    "Human3RConfig",
    "Humans",
    "State",
    "StreamFrame",
    "load_model",
    "prepare_frame",
    "run_stream",
    "run_streams",
]
