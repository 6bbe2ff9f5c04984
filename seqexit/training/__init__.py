"""Training recipes over one loop: joint multi-exit fine-tuning and two-stage training."""

from .config import TrainConfig
from .joint import TrainResult, train_joint
from .two_stage import train_two_stage

__all__ = ["TrainConfig", "TrainResult", "train_joint", "train_two_stage"]
