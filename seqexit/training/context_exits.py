"""Context exits: the exits below the last re-fitted to read each word's neighbours too.

A linear exit after layer 1 sees one word's state one layer in, and scores 67 F1 on CoNLL-2003
where the same model's last exit scores 89: most of what it lacks is context the upper layers
would add. Reading the states of words i-k..i+k as well (`ExitHead.context`) gives it that
context for a few FLOPs per word. The encoder and the last exit stay frozen, so full depth is
bit for bit what it was; each lower exit starts from its old weights (its own word's block, the
neighbours' blocks at zero) and learns the last exit's distribution over the words of a corpus
(distillation: no gold labels needed). Exits 1 and 2 then read exactly the states they read
under TOKEE (no word has been copied forward yet below layer 2's keys).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..exits.engine import length_sorted_batches
from ..model import MAX_EXIT_CONTEXT, ExitHead, MultiExitTagger


@dataclass
class ContextExitsResult:
    context: list[int]  # words on each side each exit reads now
    epoch_losses: list[float]  # mean distillation loss (KL to the last exit, summed over the exits) per epoch
    agreement_before: list[float]  # per exit below the last: share of words labelled as the last exit labels them
    agreement_after: list[float]


def widen_exit(head: ExitHead, context: int) -> ExitHead:
    """A context exit that starts as `head`: its own word's block holds `head`'s weights, the
    neighbours' blocks zeros, so it gives the same logits until it is trained."""
    hidden = head.linear.in_features // (2 * head.context + 1)
    wide = ExitHead(hidden, head.linear.out_features, head.dropout.p, context)
    with torch.no_grad():
        wide.linear.weight.zero_()
        old = head.linear.weight.view(head.linear.out_features, 2 * head.context + 1, hidden)
        new = wide.linear.weight.view(wide.linear.out_features, 2 * context + 1, hidden)
        keep = min(context, head.context)
        new[:, context - keep:context + keep + 1] = old[:, head.context - keep:head.context + keep + 1]
        wide.linear.bias.copy_(head.linear.bias)
    return wide.to(head.linear.weight.device)


def train_context_exits(
    model: MultiExitTagger, sentences: Sequence[Sequence[str]], *, context: int = 1, epochs: int = 4,
    learning_rate: float = 1e-3, batch_size: int = 32, seed: int = 42, progress: bool = False,
) -> ContextExitsResult:
    """Replace the exits below the last with context exits reading `context` words on each
    side, fitted on `sentences` (word lists; labels are not used). Changes `model` in place and
    records the widths in `model.config.exit_context`; the encoder and the last exit are left as
    they were. Temperatures and trained halting heads fitted to the old exits no longer apply:
    they are dropped (calibrate again)."""
    if model.num_layers < 2:
        raise ValueError("context exits need a model with at least 2 layers")
    if not 1 <= context <= MAX_EXIT_CONTEXT:
        raise ValueError(f"context must be in 1..{MAX_EXIT_CONTEXT}, got {context}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if not sentences:
        raise ValueError("no sentences to learn from")
    torch.manual_seed(seed)
    last = model.num_layers - 1
    was_training = model.training
    model.eval()
    batches = list(length_sorted_batches(model, sentences, batch_size))
    before = _agreement(model, batches)
    for layer in range(last):
        model.exits[layer] = widen_exit(model.exits[layer], context)
    heads = [model.exits[layer] for layer in range(last)]
    parameters = [p for head in heads for p in head.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate, total_steps=epochs * len(batches))
    losses: list[float] = []
    try:
        for epoch in range(epochs):
            total = 0.0
            order = torch.randperm(len(batches)).tolist()
            for index in tqdm(order, desc=f"context exits, epoch {epoch + 1}/{epochs}", disable=None if progress else True,
                              leave=False):
                _, batch = batches[index]
                with torch.no_grad():
                    states = list(model.layer_states(batch))  # (batch, pieces, hidden) per layer
                    teacher = model.read_exit(last, states[last], batch.word_starts).float().softmax(-1)[batch.word_mask]
                loss = sum(
                    F.kl_div(model.read_exit(layer, states[layer], batch.word_starts).float()[batch.word_mask].log_softmax(-1),
                             teacher, reduction="batchmean")
                    for layer in range(last)
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                total += float(loss.detach())
            losses.append(total / len(batches))
    finally:
        model.train(was_training)
    model.config.exit_context = [context] * last + [model.exits[last].context]
    model.training_record = {**(model.training_record or {}), "context_exits": {
        "context": context, "epochs": epochs, "learning_rate": learning_rate, "sentences": len(sentences)}}
    model.exit_temperatures = None
    model.learned_exits = None
    model.halting_signals = None
    return ContextExitsResult(model.config.exit_context, losses, before, _agreement(model, batches))


@torch.no_grad()
def _agreement(model: MultiExitTagger, batches) -> list[float]:
    """Per exit below the last: the share of words whose label equals the last exit's."""
    last = model.num_layers - 1
    agree, words = torch.zeros(last), 0
    for _, batch in batches:
        states = list(model.layer_states(batch))
        final = model.read_exit(last, states[last], batch.word_starts).argmax(-1)[batch.word_mask]
        for layer in range(last):
            agree[layer] += model.read_exit(layer, states[layer], batch.word_starts).argmax(-1)[batch.word_mask].eq(final).sum()
        words += int(batch.word_mask.sum())
    return (agree / max(words, 1)).tolist()
