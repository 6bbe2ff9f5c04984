"""Training recipes over one loop: joint multi-exit fine-tuning, two-stage training and
self-sampling fine-tuning (SSFT)."""

from .config import TrainConfig
from .joint import TrainResult, train_joint
from .self_sampling import SelfSamplingConfig, train_self_sampling
from .two_stage import train_two_stage

__all__ = [
    "SelfSamplingConfig", "TrainConfig", "TrainResult", "train_joint", "train_self_sampling", "train_two_stage",
]
