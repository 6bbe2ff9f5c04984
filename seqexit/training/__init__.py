"""Training recipes over one loop: joint multi-exit fine-tuning, two-stage training,
self-distillation, learned exit weights, and self-sampling fine-tuning (SSFT) on top; `train`
runs a whole recipe as `seqexit train` does."""

from .config import TrainConfig
from .distill import train_distill
from .joint import TrainResult, train_joint
from .learned_weights import train_learned_weights
from .recipes import TrainOutcome, train
from .record import RECIPES
from .self_sampling import SelfSamplingConfig, train_self_sampling, train_self_sampling_guarded
from .two_stage import train_two_stage

__all__ = [
    "RECIPES", "SelfSamplingConfig", "TrainConfig", "TrainOutcome", "TrainResult", "train", "train_distill", "train_joint",
    "train_learned_weights", "train_self_sampling", "train_self_sampling_guarded", "train_two_stage",
]
