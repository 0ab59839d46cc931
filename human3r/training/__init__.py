"""Training Human3R: the reference's training step, number for number (checked by `human3r parity train`).

One module per concept: `views` (the collated views a loader gives, typed), `bodies` (the SMPL-X layers of the
ground truth and of the loss), `teacher` (teacher forcing: targets and the head cells that choose the prompts),
`forward` (the views through `Human3R.forward`, teacher-forced), `losses` (ConfLoss + RGBLoss + SMPLLoss, one
function per term), `params` (trainable / fixed / frozen, optimiser groups), `config` (the paper's recipe as frozen
dataclasses) and `step` (`train_step`, `optimizer_step`, `learning_rate`: what a loop calls).
"""

from human3r.training.bodies import TrainingBodies
from human3r.training.config import LossConfig, OptimizerConfig, SmplLossWeights, TrainConfig
from human3r.training.params import ParameterSets, partition_parameters, prepare_for_training
from human3r.training.step import (
    ClipReport,
    StepOutput,
    build_optimizer,
    learning_rate,
    optimizer_step,
    train_step,
)
from human3r.training.views import TrainView, views_from_batch

__all__ = [
    "ClipReport",
    "LossConfig",
    "OptimizerConfig",
    "ParameterSets",
    "SmplLossWeights",
    "StepOutput",
    "TrainConfig",
    "TrainView",
    "TrainingBodies",
    "build_optimizer",
    "learning_rate",
    "optimizer_step",
    "partition_parameters",
    "prepare_for_training",
    "train_step",
    "views_from_batch",
]
