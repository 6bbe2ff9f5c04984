"""One padded batch through the encoder under an `ExitPolicy`: the layer loop with exits.

TOKEE: after every layer each still-active word is read by that layer's exit; a word whose
window doubt (its criterion's, `criteria.py`; normalised entropy by default) is below the bound halts there (label, confidence, exit layer fixed) and
so do all its word pieces. Later layers run queries, attention output and the feed-forward block
on the active pieces only (packed across the batch, `EncoderAdapter.run_layer_active`); keys and
values still come from every piece, halted ones with their frozen states. [CLS]/[SEP] belong to
no word: they run while their sentence does. SENTEE is the same loop where a sentence halts as a
whole. A sentence with no active word leaves the batch, and the batch is trimmed to the longest
sentence still running.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..encoders.base import piece_rows
from ..model import MultiExitTagger, WordPast
from ..pieces import Batch, at_word_starts, piece_words
from .flops import FlopCounter
from .criteria import TRAINED, CriterionState
from .policy import ExitPolicy
from .uncertainty import window_uncertainty


@dataclass
class BatchExits:
    """Per word of a batch: the exit that labelled it, and what it said."""

    label_ids: torch.Tensor  # (batch, words) long
    confidence: torch.Tensor  # (batch, words) float, max probability at the exit
    exit_layer: torch.Tensor  # (batch, words) long, 1-based; 0 on padding
    logits: torch.Tensor  # (batch, words, labels) at the exit layer
    flops: FlopCounter  # spent on this batch, and what a full forward of it would cost
    hidden: torch.Tensor | None = None  # (batch, pieces, hidden) final states, if asked for
    row_flops: tuple[torch.Tensor, torch.Tensor] | None = None  # (spent, full) per row: (batch,) each


def new_counter(model: MultiExitTagger, depth: int | None = None) -> FlopCounter:
    """A zeroed FLOP counter sized for `model`, charging each word's exit read at the costliest
    exit (or at exit `depth`'s cost, for a run that reads only that one)."""
    parts = model.adapter.layers[0]
    heads = model.exits if depth is None else [model.exits[depth - 1]]
    return FlopCounter(parts.query.in_features, parts.ffn_in.out_features, len(model.labels), model.num_layers,
                       exit_flops=max(head.flops_per_word() for head in heads))


def exit_batch(
    model: MultiExitTagger, batch: Batch, policy: ExitPolicy, *, keep_hidden: bool = False, group_size: int | None = None
) -> BatchExits:
    """Run `batch` under `policy` (call under torch.inference_mode for inference).

    group_size: TOKEE/SENTEE run each layer on groups of at most this many running rows,
    regrouped at every layer (default: the whole batch); see `_dynamic`."""
    loop = None if keep_hidden else model.adapter.exit_loop(policy, trained_heads(model, policy))
    if loop is not None:
        return _in_one_call(model, batch, policy, loop, group_size)
    fixed = policy.mode in ("full", "static")
    owner = None if fixed else piece_words(batch)  # fixed depth: every piece runs every layer
    if fixed:
        out, words_read = _static(model, batch, policy.exit_depth(model.num_layers), keep_hidden)
    elif batch.input_ids.shape[0] == 1:
        out, words_read = _one_sentence(model, batch, owner, policy, keep_hidden)
    else:
        out, words_read = _dynamic(model, batch, owner, policy, keep_hidden, group_size)
    n_pieces = batch.attention_mask.sum(1)
    if fixed:
        piece_exit = batch.attention_mask.long() * policy.exit_depth(model.num_layers)
    else:
        depth = out.exit_layer.max(1, keepdim=True).values  # a row's [CLS]/[SEP] run while it does
        piece_exit = torch.where(owner >= 0, out.exit_layer.gather(1, owner.clamp(min=0)), depth) * batch.attention_mask
    _count(out, n_pieces, out.flops.rows_spent(n_pieces, piece_exit, words_read), batch)
    return out


def _count(out: BatchExits, n_pieces: torch.Tensor, spent: torch.Tensor, batch: Batch) -> None:
    """Add a batch's FLOPs, spent and those of a full forward, to `out` (total and per row)."""
    full = out.flops.rows_full(n_pieces, batch.word_mask.sum(1))
    out.flops.add(spent, full)
    out.row_flops = (spent, full)


def _empty_exits(model: MultiExitTagger, batch: Batch, hidden: torch.Tensor) -> BatchExits:
    size, n_words = batch.word_mask.shape
    device = hidden.device
    return BatchExits(
        label_ids=torch.zeros(size, n_words, dtype=torch.long, device=device),
        confidence=torch.zeros(size, n_words, device=device),
        exit_layer=torch.zeros(size, n_words, dtype=torch.long, device=device),
        logits=torch.zeros(size, n_words, len(model.labels), device=device, dtype=hidden.dtype),
        flops=new_counter(model),
    )


def _static(model, batch, depth, keep_hidden) -> tuple[BatchExits, torch.Tensor]:
    """Full depth or a static exit: the model's own layer loop, read by one exit."""
    past: list[WordPast] | None = [] if model.exits[depth - 1].shape.past else None
    for hidden in model.layer_states(batch, depth, past=past):  # (batch, pieces, hidden)
        pass
    logits = model.read_exit(depth - 1, hidden, batch.word_starts, past=past[0].mean() if past else None)  # (batch, words, labels)
    confidence, label_ids = logits.float().softmax(-1).max(-1)
    exit_layer = batch.word_mask.long() * depth
    out = BatchExits(label_ids, confidence, exit_layer, logits, new_counter(model, depth), hidden if keep_hidden else None)
    return out, batch.word_mask.sum(1)


def _in_one_call(model, batch, policy, loop, group_size) -> BatchExits:
    """The batch's embeddings, layers, exits and halting in one call of the adapter's `loop`
    per group of `group_size` rows (ONNX Runtime's exit graphs: the same decisions as
    `_static`/`_dynamic`, see `seqexit.runtime.exit_graph`), each group cut to its own longest
    row so that padding costs nothing; the graph also sums what the FLOP count needs."""
    size = batch.word_mask.shape[0]
    bounds, depth = policy.doubt_bounds(model.num_layers), policy.exit_depth(model.num_layers)
    step = min(group_size or size, size)
    n_pieces = batch.attention_mask.sum(1)
    if step == size:  # one call (batch 1, or a batch no larger than a group): no copies
        logits, exit_layer, queries = loop(batch, bounds, model.exit_temperatures)
    else:
        logits = torch.zeros(size, batch.word_mask.shape[1], len(model.labels))
        exit_layer, queries = torch.zeros_like(batch.word_starts), torch.zeros_like(n_pieces)
        for start in range(0, size, step):
            rows = slice(start, start + step)
            pieces, words = int(n_pieces[rows].max()), int(batch.word_mask[rows].sum(1).max())
            group = Batch(batch.input_ids[rows, :pieces], batch.attention_mask[rows, :pieces],
                          batch.word_starts[rows, :words], batch.word_mask[rows, :words],
                          _rows(batch.casing_ids, rows, pieces))
            part = loop(group, bounds, model.exit_temperatures)
            logits[rows, :words] = part.logits
            if part.exit_layer is not None:
                exit_layer[rows, :words], queries[rows] = part.exit_layer, part.queries
    n_words = batch.word_mask.sum(1)
    if exit_layer is None or policy.mode in ("full", "static"):  # every piece runs `depth` layers
        deepest, queries, exit_layer = depth, n_pieces * depth, batch.word_mask.long() * depth
        words_read = n_words  # one exit
    else:  # a row's exits read all its words at every layer it runs
        deepest = exit_layer.max(1).values
        words_read = n_words * deepest
    confidence, label_ids = logits.softmax(-1).max(-1)
    fixed = policy.mode in ("full", "static")
    out = BatchExits(label_ids, confidence, exit_layer, logits, new_counter(model, depth if fixed else None))
    _count(out, n_pieces, out.flops.rows_spent_from(n_pieces, deepest, queries, words_read), batch)
    return out


def _dynamic(model, batch, owner, policy, keep_hidden, group_size) -> tuple[BatchExits, torch.Tensor]:
    """The TOKEE/SENTEE loop, layer by layer over groups of running rows. It cannot be the
    model's `layer_states` loop: it decides halting as it goes and packs and regroups the
    running rows at every layer, which a fixed-shape, differentiable loop does not.

    Rows are taken in batch order (the caller sorts by length) and regrouped at every layer from
    those still running: a group holds `group_size` rows, or more (up to 4x) while it has fewer
    active pieces than `group_size` rows had at layer 1, so halting turns into fewer, fuller
    matrix products instead of ever smaller ones. Exits read every word of a
    running row (a few FLOPs per word, and far fewer small operations than reading only the
    active ones); a halted word keeps the logits, uncertainty and exit layer it had when it
    halted, and its states stay as they were.
    """
    num_layers, tokee = model.num_layers, policy.mode == "tokee"
    bounds = policy.doubt_bounds(num_layers)
    size, n_words = batch.word_mask.shape
    parts = model.adapter.layers[0]
    device, dtype = model.adapter.state_dtype
    # the running rows' states, in `running` order, so that a group is a slice (a view the layer
    # updates in place) and rows leave with one gather per layer; embedded group by group at layer 1
    states_run = torch.zeros(size, batch.input_ids.shape[1], parts.query.in_features, device=device, dtype=dtype)
    hidden = torch.zeros_like(states_run) if keep_hidden else None  # every row's final states
    out = _empty_exits(model, batch, states_run)
    owner = owner.masked_fill(owner < 0, n_words)  # [CLS]/[SEP]/padding read the "row runs" column
    n_pieces, n_row_words = batch.attention_mask.sum(1), batch.word_mask.sum(1)
    active = batch.word_mask.clone()
    learned, heads = policy.criterion == "learned", trained_heads(model, policy)
    state = CriterionState(policy.criterion, size, n_words, len(model.labels), device, batch.word_mask)
    temperatures = model.exit_temperatures if policy.criterion == "confidence" else None
    logits_all, exit_layer = out.logits, torch.zeros_like(batch.word_starts)
    words_read = torch.zeros(size, dtype=torch.long, device=device)
    # each word's states so far, where an exit reads them; the embeddings count as one layer
    past = WordPast(torch.zeros(size, n_words, states_run.shape[-1], device=device, dtype=dtype)) if model.reads_past else None
    running = torch.arange(size, device=device)  # rows with an active word, in batch order
    group_size = group_size or size
    word_pieces = _pieces_per_word(batch)  # (size, words)
    budget = group_size * float(n_pieces.float().mean())  # active pieces in a full group at layer 1
    for layer in range(num_layers):
        active_pieces = (word_pieces[running] * active[running]).sum(1) + 2  # queries per running row
        for start, end in _groups(active_pieces, group_size, budget):
            rows = running[start:end]
            pieces, words = int(n_pieces[rows].max()), int(n_row_words[rows].max())
            key_mask, act = batch.attention_mask[rows, :pieces], active[rows, :words]
            view = states_run[start:end, :pieces]  # (group, pieces, hidden)
            if layer == 0:
                states = model.adapter.embed(batch.input_ids[rows, :pieces], _rows(batch.casing_ids, rows, pieces))
                if past is not None:
                    past.add_rows(states, batch.word_starts[rows, :words], rows)
            else:
                states = view
            if tokee and not bool(act.eq(batch.word_mask[rows, :words]).all()):
                act_or_row = torch.cat([act, act.new_ones(len(rows), 1)], 1)
                pieces_active = key_mask & act_or_row.gather(1, owner[rows, :pieces].clamp(max=words))
                states = model.adapter.run_layer_active(layer, states, key_mask, pieces_active)
            else:
                states = model.adapter.run_layer(layer, states, key_mask)
            if states is not view:  # the torch engine updates a view in place
                view.copy_(states)
        # the exit, criterion and halting read every running row at once: a few small operations
        # per layer instead of per group
        rows, words = running, int(n_row_words[running].max())
        starts, word_mask, act = batch.word_starts[rows, :words], batch.word_mask[rows, :words], active[rows, :words]
        flat, row_stride = piece_rows(states_run)  # contiguous: piece (r, p) is row r * row_stride + p
        at = (torch.arange(len(rows), device=device)[:, None] * row_stride + starts).view(-1)  # (running * words,)
        at_starts = flat.index_select(0, at).view(len(rows), words, -1)  # (running, words, hidden)
        below = past.mean(rows, words) if past is not None else None  # (running, words, hidden)
        logits = model.read_exit_words(layer, at_starts, starts, past=below)  # (running, words, labels)
        if past is not None:
            past.add_words(at_starts, rows)
            past.next_layer()
        words_read[rows] += n_row_words[rows]
        logits_all[rows, :words] = torch.where(act[..., None], logits, logits_all[rows, :words])
        features = at_starts if learned else None
        doubt = state.step(rows, words, logits, act, layer, num_layers, policy.patience, temperatures, features, heads)
        exit_layer[rows, :words] += act
        if layer == num_layers - 1:
            break
        certain = window_uncertainty(doubt, word_mask, policy.window) < bounds[layer]
        halt = act & (certain if tokee else (certain | ~word_mask).all(1, keepdim=True))
        act = act & ~halt
        active[rows, :words] = act
        going_on = act.any(1)  # (running,)
        if not bool(going_on.all()):
            if hidden is not None:
                _keep_final(hidden, running[~going_on], states_run[~going_on])
            keep = going_on.nonzero().view(-1)
            running = running[keep]
            if running.numel() == 0:
                break
            # one gather of the rows that go on, cut to the longest of them (contiguous again)
            states_run = states_run[:, :int(n_pieces[running].max())].index_select(0, keep)
    if hidden is not None and running.numel():
        _keep_final(hidden, running, states_run)
    out.confidence, out.label_ids = logits_all.float().softmax(-1).max(-1)
    out.exit_layer = exit_layer * batch.word_mask
    if keep_hidden:
        out.hidden = hidden
    return out, words_read


def _keep_final(hidden: torch.Tensor, rows: torch.Tensor, states: torch.Tensor) -> None:
    """Store the final states (rows, pieces', hidden) of rows that stopped into `hidden`."""
    hidden[rows, :states.shape[1]] = states


def _one_sentence(model, batch, owner, policy, keep_hidden) -> tuple[BatchExits, torch.Tensor]:
    """`_dynamic` for a batch of one sentence (batch 1: one `nlp(text)` call, one request): the
    same decisions with no groups, row gathers or scatters, so that the few small operations
    around each layer do not cost more than the layer (measured: 2.4 ms of host work per
    sentence in `_dynamic` against 1.3 ms of layers on ONNX Runtime int8)."""
    num_layers, tokee = model.num_layers, policy.mode == "tokee"
    bounds = policy.doubt_bounds(num_layers)
    n_words = batch.word_mask.shape[1]
    key_mask, word_mask = batch.attention_mask, batch.word_mask  # (1, pieces), (1, words)
    learned, heads = policy.criterion == "learned", trained_heads(model, policy)
    hidden = model.adapter.embed(batch.input_ids, batch.casing_ids)  # (1, pieces, hidden)
    past = WordPast.from_embeddings(hidden, batch.word_starts) if model.reads_past else None
    out = _empty_exits(model, batch, hidden)
    state = CriterionState(policy.criterion, 1, n_words, len(model.labels), hidden.device, word_mask)
    temperatures = model.exit_temperatures if policy.criterion == "confidence" else None
    reads = owner.masked_fill(owner < 0, n_words)  # (1, pieces): [CLS]/[SEP] read the "row runs" column
    row = torch.zeros(1, dtype=torch.long, device=hidden.device)
    active, logits_all = word_mask.clone(), out.logits
    exit_layer = torch.zeros_like(batch.word_starts)
    layers_run = 0
    for layer in range(num_layers):
        if layer == 0 or bool(active.eq(word_mask).all()):
            hidden = model.adapter.run_layer(layer, hidden, key_mask)
        else:
            running = torch.cat([active, active.new_ones(1, 1)], 1).gather(1, reads)  # (1, pieces)
            hidden = model.adapter.run_layer_active(layer, hidden, key_mask, key_mask & running)
        layers_run += 1
        features = at_word_starts(hidden, batch.word_starts) if learned else None  # (1, words, hidden)
        logits = model.read_exit(layer, hidden, batch.word_starts, past=past.mean() if past else None)  # (1, words, labels)
        if past is not None:
            past.add_layer(hidden, batch.word_starts)
        logits_all = torch.where(active[..., None], logits, logits_all)
        doubt = state.step(row, n_words, logits, active, layer, num_layers, policy.patience, temperatures, features, heads)
        exit_layer += active
        if layer == num_layers - 1:
            break
        certain = window_uncertainty(doubt, word_mask, policy.window) < bounds[layer]
        halt = active & (certain if tokee else (certain | ~word_mask).all(1, keepdim=True))
        active = active & ~halt
        if not bool(active.any()):
            break
    out.logits = logits_all
    out.confidence, out.label_ids = logits_all.float().softmax(-1).max(-1)
    out.exit_layer = exit_layer * word_mask
    if keep_hidden:
        out.hidden = hidden
    return out, word_mask.sum(1) * layers_run


def trained_heads(model: MultiExitTagger, policy: ExitPolicy):
    """The model's heads that `policy`'s criterion reads ("learned", "signals"), None for the
    others; a ValueError saying how to train them where the model has none."""
    attribute = TRAINED.get(policy.criterion)
    if attribute is None:
        return None
    heads = getattr(model, attribute)
    if heads is None:
        kind = " --criterion signals" if policy.criterion == "signals" else ""
        raise ValueError(f"criterion {policy.criterion!r} needs its trained heads: run `seqexit learn-exits MODEL DATA{kind}` first")
    return heads


def _pieces_per_word(batch: Batch) -> torch.Tensor:
    """(batch, words) long: how many word pieces each word has (0 on padding)."""
    sep = batch.attention_mask.sum(1, keepdim=True) - 1
    ends = torch.cat([batch.word_starts[:, 1:], sep], 1)
    ends = torch.where(torch.cat([batch.word_mask[:, 1:], batch.word_mask.new_zeros(len(sep), 1)], 1), ends, sep)
    return (ends - batch.word_starts) * batch.word_mask


def _groups(active_pieces: torch.Tensor, group_size: int, budget: float) -> list[tuple[int, int]]:
    """Consecutive [start, end) runs of rows, each with about `budget` active pieces (what
    `group_size` rows hold before any halting) and between `group_size` and 4 * `group_size`
    rows: as words halt, a group takes in more rows so that its packed products stay full."""
    total = len(active_pieces)
    if total <= group_size or group_size == 1:  # batch 1 stays one sentence per call
        return [(start, min(start + group_size, total)) for start in range(0, total, group_size)]
    cumulative = active_pieces.cumsum(0).tolist()
    bounds, start = [], 0
    while start < total:
        base = cumulative[start - 1] if start else 0
        end = min(start + group_size, total)
        while end < min(start + 4 * group_size, total) and cumulative[end - 1] - base < budget:
            end += 1
        bounds.append((start, end))
        start = end
    return bounds


def simulate_tokee(
    uncertainty: torch.Tensor, word_mask: torch.Tensor, thresholds: torch.Tensor, windows: torch.Tensor
) -> torch.Tensor:
    """The exit layer TOKEE would give every word, decided on precomputed uncertainties.

    uncertainty: (layers, batch, words) from a full forward; thresholds, windows: (batch,) one
    setting per sentence. A halted word keeps the uncertainty it had at its exit, as in the
    engine. Returns (batch, words) long, 1-based, 0 on padding."""
    num_layers = uncertainty.shape[0]
    active = word_mask.clone()
    current = torch.zeros_like(uncertainty[0])
    exit_layer = torch.zeros_like(word_mask, dtype=torch.long)
    for layer in range(num_layers):
        current = torch.where(active, uncertainty[layer], current)
        if layer == num_layers - 1:
            halt = active
        else:
            window = torch.zeros_like(current)
            for k in windows.unique().tolist():
                rows = windows == k
                window[rows] = window_uncertainty(current[rows], word_mask[rows], int(k))
            halt = active & (window < thresholds[:, None])
        exit_layer[halt] = layer + 1
        active = active & ~halt
    return exit_layer


def _rows(ids: torch.Tensor | None, rows: torch.Tensor | slice, pieces: int) -> torch.Tensor | None:
    return None if ids is None else ids[rows, :pieces]
