"""`TrainConfig`: every knob of a training run, saved beside its checkpoints."""

from __future__ import annotations

from dataclasses import dataclass

from ..training_defaults import EPOCHS, LEARNING_RATE

EXIT_WEIGHTS = ("layer", "last")


@dataclass
class TrainConfig:
    """Joint multi-exit fine-tuning.

    exit_weights: "layer" weighs exit l's loss by l / sum(1..L) (deeper exits count more);
        "last" trains the last exit only (the ordinary single-classifier fine-tune).
    exit_grad_scale: how much of the gradient of exits 1..L-1 reaches the encoder. 1.0 is
        plain joint training; 0.0 lets only the last exit shape the encoder while the other
        exits learn on its layers, which keeps full depth at the ordinary fine-tune's accuracy
        (see docs/training.md).
    train_encoder: False trains only the exits below the last, on the features of an encoder
        (and last exit) that stay exactly as they are: the second stage of the two-stage recipe
        (an ordinary fine-tune first), whose full depth is that fine-tune by construction. The
        encoder then runs without dropout, as at inference, and the best epoch is the one with
        the best mean dev score over the lower exits.
    freeze_word_embeddings: keep the backbone's word-piece embedding matrix fixed: it is a third
        of MiniLM's weights, costs a third of a CPU training step in the optimiser, and left
        unchanged it need not be shipped with a fine-tuned model.
    """

    epochs: int = EPOCHS
    learning_rate: float = LEARNING_RATE
    batch_size: int = 32
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 42
    exit_weights: str = "layer"
    exit_grad_scale: float = 0.0
    train_encoder: bool = True
    freeze_word_embeddings: bool = True
    eval_batch_size: int = 64
    checkpoint_every: int = 200  # steps; a checkpoint is also written after every epoch

    def __post_init__(self) -> None:
        if self.exit_weights not in EXIT_WEIGHTS:
            raise ValueError(f"exit_weights must be one of {EXIT_WEIGHTS}, not {self.exit_weights!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError("epochs, batch_size and learning_rate must be positive")
        if not self.train_encoder and self.exit_weights == "last":
            raise ValueError("train_encoder=False trains the lower exits: exit_weights must be 'layer'")
        if not 0.0 <= self.exit_grad_scale <= 1.0:
            raise ValueError("exit_grad_scale must be within [0, 1]")
