"""Exits that see more: the exits below the last re-fitted to read more than one state.

A linear exit after layer 1 sees one word's state one layer in, and scores 67 F1 on CoNLL-2003
where the same model's last exit scores 89: most of what it lacks is context the upper layers
would add. Each lower exit can be given, for a few FLOPs per word (`seqexit.exit_heads`):
the states of words i-k..i+k (context), the mean of the word's states below (past), an
imitation of the deeper layers' states (future, trained to match them) and a hidden layer.

The encoder and the last exit stay frozen, so full depth is bit for bit what it was; each lower
exit starts from its old weights (the new parts at zero, so it gives the same logits) and learns
the last exit's distribution over the words of a corpus (distillation: no gold labels needed);
a future imitation also learns the deeper layers' mean state at the word (mean squared error,
scaled by that state's variance).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..exits.engine import length_sorted_batches
from ..model import ExitHead, ExitShape, MultiExitTagger, WordPast
from ..pieces import Batch, at_word_starts
from .checkpoint import load_checkpoint, save_checkpoint


# batches the agreement with the last exit is measured on, before and after: each costs a full
# forward, and on a large corpus two passes over all of it would cost as much as an epoch
AGREEMENT_BATCHES = 64


@dataclass
class ContextExitsResult:
    context: list[int]  # words on each side each exit reads now
    shapes: list[ExitShape]  # what each exit reads now
    epoch_losses: list[float]  # mean loss (KL to the last exit + imitation, summed over the exits) per epoch
    agreement_before: list[float]  # per exit below the last: share of words labelled as the last exit labels them
    agreement_after: list[float]  # (both on up to AGREEMENT_BATCHES batches, spread over the sentence lengths)


def widen_exit(head: ExitHead, context: int, *, past: bool = False, future: int = 0, hidden: int = 0) -> ExitHead:
    """An exit reading (context, past, future, hidden) that starts as `head`: the blocks of its
    classifier that `head` has hold `head`'s weights, the new ones zeros (and a new hidden
    layer's output zeros), so it gives the same logits until it is trained."""
    old = head.shape
    wide = ExitHead(head.hidden_size, head.num_labels, head.dropout.p, context, past=past, future=future, hidden=hidden)
    h, c = head.hidden_size, head.num_labels
    with torch.no_grad():
        source = head.linear.weight.view(c, -1, h)  # (labels, blocks, hidden): window, [past], [future]
        target = wide.linear.weight.view(c, -1, h)
        target.zero_()
        keep = min(context, old.context)
        target[:, context - keep:context + keep + 1] = source[:, old.context - keep:old.context + keep + 1]
        if past and old.past:
            target[:, 2 * context + 1] = source[:, 2 * old.context + 1]
        if future and future == old.future:
            target[:, -1] = source[:, -1]
            wide.imitate.load_state_dict(head.imitate.state_dict())
        wide.linear.bias.copy_(head.linear.bias)
        if wide.inner is not None:
            if head.inner is not None and head.inner[0].weight.shape == wide.inner[0].weight.shape:
                wide.inner.load_state_dict(head.inner.state_dict())
            else:
                wide.inner[2].weight.zero_()
                wide.inner[2].bias.zero_()
    return wide.to(head.linear.weight.device)


def train_context_exits(
    model: MultiExitTagger, sentences: Sequence[Sequence[str]], *, context: int = 1, past: bool = False,
    future: int = 0, hidden: int = 0, epochs: int = 4, learning_rate: float = 1e-3, batch_size: int = 32,
    seed: int = 42, progress: bool = False, checkpoint: Path | None = None, checkpoint_every: int = 200,
) -> ContextExitsResult:
    """Replace the exits below the last with exits reading `context` words on each side (and
    the `past`, a `future` imitation of that many units, a `hidden` layer of that many units),
    fitted on `sentences` (word lists; labels are not used); with none of them, plain exits are
    fitted the same way (what `seqexit.adopt` does to a tagger that had one classifier). Changes `model` in place and
    records the shapes in its config; the encoder and the last exit are left as they were.
    Temperatures and trained halting heads fitted to the old exits no longer apply: they are
    dropped (calibrate again).

    checkpoint: a folder for the exits' training state, written every `checkpoint_every` batches
    and at each epoch's end; a run that finds one (written with the same settings and number of
    sentences) resumes from it to the same result. The caller removes it when done."""
    if model.num_layers < 2:
        raise ValueError("context exits need a model with at least 2 layers")
    ExitShape(context, past, future, hidden)  # checks the ranges
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if not sentences:
        raise ValueError("no sentences to learn from")
    torch.manual_seed(seed)
    last = model.num_layers - 1
    was_training = model.training
    model.eval()
    batches = list(length_sorted_batches(model, sentences, batch_size))
    sample = batches[::max(1, len(batches) // AGREEMENT_BATCHES)]  # spread over the lengths
    before = _agreement(model, sample)
    for layer in range(last):
        model.exits[layer] = widen_exit(model.exits[layer], context, past=past, future=future, hidden=hidden)
    heads = [model.exits[layer] for layer in range(last)]
    parameters = [p for head in heads for p in head.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate, total_steps=epochs * len(batches))
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    settings = {"context": context, "past": past, "future": future, "hidden": hidden, "epochs": epochs,
                "learning_rate": learning_rate, "batch_size": batch_size, "seed": seed, "sentences": len(sentences)}
    state = {"settings": settings, "epoch": 0, "done": 0, "order": None, "total": 0.0, "losses": []}
    trained = nn.ModuleList(heads)  # what a checkpoint holds: the encoder and the last exit do not change
    if checkpoint is not None and (checkpoint / "state.json").is_file():
        state = load_checkpoint(checkpoint, trained, optimizer, schedule)
        if state.get("settings") != settings:
            raise ValueError(f"{checkpoint} was written with other settings or text ({state.get('settings')}); "
                             "remove it or use another output")
    losses: list[float] = state["losses"]
    try:
        for head in heads:
            head.train()  # dropout on the exits being fitted; the encoder stays in eval mode
        for epoch in range(state["epoch"], epochs):
            order = state["order"] or torch.randperm(len(batches)).tolist()
            state.update(epoch=epoch, order=order)
            bar = tqdm(total=len(order), initial=state["done"], desc=f"exits, epoch {epoch + 1}/{epochs}",
                       disable=None if progress else True, leave=False)
            for done in range(state["done"], len(order)):
                loss = _loss(model, batches[order[done]][1])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                state["total"] += float(loss.detach())
                state["done"] = done + 1
                bar.update()
                if checkpoint is not None and state["done"] % checkpoint_every == 0 and state["done"] < len(order):
                    save_checkpoint(checkpoint, trained, optimizer, schedule, state)
            bar.close()
            losses.append(state["total"] / len(batches))
            state.update(epoch=epoch + 1, done=0, order=None, total=0.0, losses=losses)
            if checkpoint is not None:
                save_checkpoint(checkpoint, trained, optimizer, schedule, state)
    finally:
        model.train(was_training)
    shapes = [head.shape for head in model.exits]
    model.config.set_exit_shapes(shapes)
    model.training_record = {**(model.training_record or {}), "context_exits": {
        "context": context, "past": past, "future": future, "hidden": hidden, "epochs": epochs,
        "learning_rate": learning_rate, "sentences": len(sentences)}}
    model.exit_temperatures = None
    model.learned_exits = None
    model.halting_signals = None
    return ContextExitsResult([s.context for s in shapes], shapes, losses, before, _agreement(model, sample))


@torch.no_grad()
def _frozen_reads(model: MultiExitTagger, batch: Batch) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    """Every layer's piece states and, where an exit reads it, the mean of the states below."""
    keep: list[WordPast] | None = [] if model.reads_past else None
    states, pasts = [], []
    for hidden in model.layer_states(batch, past=keep):
        states.append(hidden)  # (batch, pieces, hidden)
        pasts.append(keep[0].mean() if keep else None)  # (batch, words, hidden)
    return states, pasts


def _loss(model: MultiExitTagger, batch: Batch) -> torch.Tensor:
    """KL from the last exit's distribution to each lower exit's, plus each future imitation's
    error on the deeper layers' mean state, scaled by that state's variance."""
    last = model.num_layers - 1
    states, pasts = _frozen_reads(model, batch)
    mask = batch.word_mask
    with torch.no_grad():
        teacher = model.read_exit(last, states[last], batch.word_starts).float().softmax(-1)[mask]
        deeper = None
        if any(model.exits[layer].imitate is not None for layer in range(last)):
            words = torch.stack([at_word_starts(s, batch.word_starts) for s in states])  # (layers, batch, words, hidden)
            # mean of layers l+1..L, for every l: suffix sums
            suffix = words.flip(0).cumsum(0).flip(0)
            deeper = [suffix[layer + 1] / (last - layer) for layer in range(last)]
    loss = torch.zeros((), dtype=torch.float32)
    for layer in range(last):
        logits = model.read_exit(layer, states[layer], batch.word_starts, past=pasts[layer])
        loss = loss + F.kl_div(logits.float()[mask].log_softmax(-1), teacher, reduction="batchmean")
        head = model.exits[layer]
        if head.imitate is not None and deeper is not None:
            target = deeper[layer][mask]
            guess = head.imitate(at_word_starts(states[layer], batch.word_starts))[mask]
            loss = loss + F.mse_loss(guess.float(), target.float()) / target.float().var().clamp(min=1e-6)
    return loss


@torch.no_grad()
def _agreement(model: MultiExitTagger, batches) -> list[float]:
    """Per exit below the last: the share of words whose label equals the last exit's."""
    last = model.num_layers - 1
    agree, words = torch.zeros(last), 0
    for _, batch in batches:
        states, pasts = _frozen_reads(model, batch)
        final = model.read_exit(last, states[last], batch.word_starts).argmax(-1)[batch.word_mask]
        for layer in range(last):
            logits = model.read_exit(layer, states[layer], batch.word_starts, past=pasts[layer])
            agree[layer] += logits.argmax(-1)[batch.word_mask].eq(final).sum()
        words += int(batch.word_mask.sum())
    return (agree / max(words, 1)).tolist()
