"""Training's defaults and recipe names, in a module that imports nothing, so that the CLI can
show them (`seqexit train --help`) without loading torch or the training stack."""

from __future__ import annotations

RECIPES = {
    "two-stage": "ordinary fine-tune, then the lower exits on its frozen encoder (DeeBERT)",
    "joint": "every exit's loss at once, weighted by depth",
    "distill": "ordinary fine-tune, then the lower exits learn the last exit's distribution (FastBERT)",
    "learned-weights": "joint, with learned exit weights and mutual distillation between exits (LeeBERT)",
}
# The measured best first stage (benchmarks/training_recipes.md): distill + SSFT is the best at full depth on
# CoNLL-2003 (88.88 test F1 against 88.52 for two-stage + SSFT); on UD EWT two-stage + SSFT led by 0.03, noise.
DEFAULT_RECIPE = "distill"
EPOCHS, LEARNING_RATE = 4, 1e-4  # the first stage's (`TrainConfig`'s) defaults
SSFT_EPOCHS, SSFT_LEARNING_RATE = 2, 2e-5  # SSFT's defaults: a short, gentle run on a trained model
DEFAULT_TEMPERATURE = 1.0  # distill: softmax temperature of the targets
DEFAULT_MUTUAL = 0.5  # learned-weights: weight of the mutual distillation
DEFAULT_FULL_DEPTH_TOLERANCE = 0.15  # dev points of full-depth score SSFT may cost and still be kept
