"""Training: joint multi-exit fine-tuning over one loop (self-sampling comes with the engine)."""

from .config import TrainConfig
from .joint import TrainResult, train_joint

__all__ = ["TrainConfig", "TrainResult", "train_joint"]
