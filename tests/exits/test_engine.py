"""Exactness of the early-exit engine on tiny random models."""

import pytest
import torch

from seqexit.exits import ExitPolicy, exit_batch, run_policy
from seqexit.pieces import piece_words
from seqexit.pieces import WordPieceEncoder

NEVER = 0.0  # uncertainty is >= 0, and a word halts only *below* the threshold
ALWAYS = 2.0  # normalised entropy is <= 1


def batch_of(model, sentences):
    return model.pieces.collate([chunks[0] for chunks in model.pieces.encode(sentences)])


@pytest.mark.parametrize("layers", [2, 5, 12])
@pytest.mark.parametrize("mode", ["tokee", "sentee"])
def test_threshold_zero_equals_a_plain_full_forward_and_hugging_face(make_tagger, sentences, layers, mode):
    model = make_tagger(layers)
    batch = batch_of(model, sentences)
    with torch.inference_mode():
        full = model(batch, exits="last")[0]  # (batch, words, labels)
        got = exit_batch(model, batch, ExitPolicy(mode=mode, threshold=NEVER, window=1))
        reference = model.encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask.long()).last_hidden_state
        index = batch.word_starts[..., None].expand(-1, -1, reference.shape[-1])
        hf_labels = model.exits[-1](reference.gather(1, index)).argmax(-1)
    mask = batch.word_mask
    assert (got.logits - full)[mask].abs().max() <= 1e-4
    assert torch.equal(got.label_ids[mask], hf_labels[mask])
    assert (got.exit_layer[mask] == layers).all() and (got.exit_layer[~mask] == 0).all()


def test_packed_layer_equals_the_full_layer_at_the_active_pieces(make_tagger, sentences):
    model = make_tagger(4)
    batch = batch_of(model, sentences)
    torch.manual_seed(1)
    active = batch.attention_mask & (torch.rand(batch.attention_mask.shape) < 0.5)
    with torch.inference_mode():
        hidden = model.adapter.embed(batch.input_ids)
        full = model.adapter.run_layer(1, hidden, batch.attention_mask)
        packed = model.adapter.run_layer_active(1, hidden.clone(), batch.attention_mask, active)
    assert (packed - full)[active].abs().max() <= 1e-5
    assert torch.equal(packed[~active], hidden[~active]), "inactive pieces are copied bit for bit"



def test_packed_layer_on_a_slice_of_wider_states_writes_only_its_own_rows(make_tagger, sentences):
    """The engine hands a group as a slice (rows and pieces) of its wider running states: the
    layer gathers and scatters through that storage, and leaves every other row and piece as is."""
    from seqexit.encoders.base import piece_rows

    model = make_tagger(4)
    batch = batch_of(model, sentences)
    torch.manual_seed(2)
    active = batch.attention_mask & (torch.rand(batch.attention_mask.shape) < 0.5)
    size, pieces = batch.attention_mask.shape
    with torch.inference_mode():
        hidden = model.adapter.embed(batch.input_ids)
        expected = model.adapter.run_layer_active(1, hidden.clone(), batch.attention_mask, active)
        wider = torch.randn(size + 2, pieces + 3, hidden.shape[-1])  # (rows, pieces, hidden)
        wider[1:size + 1, :pieces] = hidden
        before = wider.clone()
        group = wider[1:size + 1, :pieces]
        flat, row_stride = piece_rows(group)
        assert row_stride == pieces + 3 and torch.equal(flat[row_stride + 2], group[1, 2])
        got = model.adapter.run_layer_active(1, group, batch.attention_mask, active)
    assert got.data_ptr() == group.data_ptr(), "inference writes into the slice it was given"
    assert (wider[1:size + 1, :pieces] - expected)[batch.attention_mask].abs().max() <= 1e-5
    outside = torch.ones(wider.shape[:2], dtype=torch.bool)
    outside[1:size + 1, :pieces] = False
    assert torch.equal(wider[outside], before[outside])
    assert piece_rows(hidden.transpose(0, 1)) is None, "a layout with no row view is refused"

def test_halting_everything_at_layer_l_equals_a_static_exit_at_l(make_tagger, sentences):
    model = make_tagger(6)
    batch = batch_of(model, sentences)
    for exit_at in (1, 3, 6):
        thresholds = [NEVER] * 6
        thresholds[exit_at - 1] = ALWAYS
        with torch.inference_mode():
            tokee = exit_batch(model, batch, ExitPolicy.tokee(thresholds, window=2))
            static = exit_batch(model, batch, ExitPolicy.static(exit_at))
        mask = batch.word_mask
        assert torch.equal(tokee.label_ids[mask], static.label_ids[mask])
        assert (tokee.logits - static.logits)[mask].abs().max() <= 1e-5
        assert (tokee.exit_layer[mask] == exit_at).all()


def _mid_threshold(model, batch, layer=1):
    """A threshold that halts some but not all words of `batch` at `layer` (1-based)."""
    from seqexit.exits import normalised_entropy

    with torch.inference_mode():
        logits = model(batch)[layer - 1]
    return float(normalised_entropy(logits)[batch.word_mask].median())


def test_tokee_halts_words_not_whole_sentences(make_tagger, sentences):
    model = make_tagger(6)
    batch = batch_of(model, sentences)
    threshold = _mid_threshold(model, batch)
    with torch.inference_mode():
        run = exit_batch(model, batch, ExitPolicy.tokee(threshold, window=0))
    layers = run.exit_layer[batch.word_mask]
    assert layers.min() == 1 and layers.max() > 1
    assert any(len(set(run.exit_layer[row][batch.word_mask[row]].tolist())) > 1 for row in range(len(sentences)))


def test_flops_full_static_and_tokee(make_tagger, sentences):
    model = make_tagger(6)
    batch = batch_of(model, sentences)
    threshold = _mid_threshold(model, batch)
    with torch.inference_mode():
        counters = {
            "full": exit_batch(model, batch, ExitPolicy()).flops,
            "static": exit_batch(model, batch, ExitPolicy.static(3)).flops,
            "tokee": exit_batch(model, batch, ExitPolicy.tokee(threshold)).flops,
        }
    full = counters["full"]
    assert full.spent == full.full > 0
    h, i, c = 32, 64, len(model.labels)
    n = batch.attention_mask.sum(1)
    per_layer = int((8 * h * h * n + 4 * h * n * n + 4 * h * i * n).sum())
    words = int(batch.word_mask.sum())
    assert full.full == 6 * per_layer + 2 * h * c * words
    assert counters["static"].spent == 3 * per_layer + 2 * h * c * words
    assert counters["tokee"].full == full.full
    assert per_layer < counters["tokee"].spent < full.full


def test_halted_word_keeps_its_exit_layer_state_bit_for_bit(make_tagger, sentences, monkeypatch):
    model = make_tagger(6)
    sentence = sentences[2]
    batch = batch_of(model, [sentence])
    threshold = _mid_threshold(model, batch)
    states = []
    for name in ("run_layer", "run_layer_active"):
        original = getattr(model.adapter, name)
        def record(*args, _f=original):
            out = _f(*args)
            states.append(out.clone())  # the engine updates states in place later
            return out

        monkeypatch.setattr(model.adapter, name, record)
    with torch.inference_mode():
        run = exit_batch(model, batch, ExitPolicy.tokee(threshold, window=0), keep_hidden=True)
    owner = piece_words(batch)[0]
    exits = run.exit_layer[0]
    assert len(set(exits.tolist())) > 1
    for word, layer in enumerate(exits.tolist()):
        pieces = owner == word
        assert torch.equal(run.hidden[0][pieces], states[layer - 1][0][pieces])


def test_a_batch_keeps_every_rows_final_states_as_rows_leave(make_tagger, sentences):
    """Rows leave the batched loop at different layers; each keeps the states it had then."""
    model = make_tagger(6)
    batch = batch_of(model, sentences)
    policy = ExitPolicy.tokee(_mid_threshold(model, batch), window=1)
    with torch.inference_mode():
        together = exit_batch(model, batch, policy, keep_hidden=True, group_size=2)
        assert len(set(together.exit_layer.max(1).values.tolist())) > 1, "rows should leave at different layers"
        for row, sentence in enumerate(sentences):
            alone = exit_batch(model, batch_of(model, [sentence]), policy, keep_hidden=True)
            pieces = int(batch.attention_mask[row].sum())
            assert torch.allclose(together.hidden[row, :pieces], alone.hidden[0, :pieces], atol=1e-5)


@pytest.mark.parametrize("mode", ["tokee", "sentee"])
def test_a_sentence_does_not_depend_on_its_batch_or_padding(make_tagger, sentences, mode):
    model = make_tagger(6)
    batch = batch_of(model, sentences)
    policy = ExitPolicy(mode=mode, threshold=_mid_threshold(model, batch), window=1)
    with torch.inference_mode():
        together = exit_batch(model, batch, policy)
        for row, sentence in enumerate(sentences):
            alone = exit_batch(model, batch_of(model, [sentence]), policy)
            n = len(sentence)
            assert torch.equal(alone.exit_layer[0, :n], together.exit_layer[row, :n])
            assert torch.equal(alone.label_ids[0, :n], together.label_ids[row, :n])
            assert (alone.logits[0, :n] - together.logits[row, :n]).abs().max() <= 1e-4


def test_sentee_exits_whole_sentences_at_the_static_exit_of_their_layer(make_tagger, sentences):
    model = make_tagger(6)
    batch = batch_of(model, sentences)
    policy = ExitPolicy.sentee(_mid_threshold(model, batch) * 1.2)
    with torch.inference_mode():
        run = exit_batch(model, batch, policy)
        static = {l: exit_batch(model, batch, ExitPolicy.static(l)) for l in range(1, 7)}
    layers = set()
    for row in range(len(sentences)):
        exits = set(run.exit_layer[row][batch.word_mask[row]].tolist())
        assert len(exits) == 1
        layer = exits.pop()
        layers.add(layer)
        n = len(sentences[row])
        assert (run.logits[row, :n] - static[layer].logits[row, :n]).abs().max() <= 1e-4
    assert len(layers) > 1


def test_run_policy_keeps_input_order_and_counts_exits(make_tagger, sentences):
    model = make_tagger(4)
    policy = ExitPolicy.tokee(0.5, window=1)
    run = run_policy(model, sentences, policy, batch_size=2)
    assert [len(r.label_ids) for r in run.sentences] == [len(s) for s in sentences]
    assert sum(run.words_per_layer) == sum(len(s) for s in sentences)
    one_by_one = [run_policy(model, [s], policy, batch_size=1).sentences[0] for s in sentences]
    for a, b in zip(run.sentences, one_by_one):
        assert torch.equal(a.label_ids, b.label_ids) and torch.equal(a.exit_layer, b.exit_layer)


def test_long_input_is_windowed_and_merged_with_one_label_per_word(make_tagger):
    model = make_tagger(4)
    short = WordPieceEncoder(model.tokenizer, max_pieces=12)
    model.pieces, original = short, model.pieces
    try:
        words = ["john", "smith", "was", "in", "berlin", "xqzw", "abc", "said", "paris"] * 3
        chunks = short.encode([words])[0]
        assert len(chunks) > 2
        run = run_policy(model, [words], ExitPolicy())
        assert len(run.sentences[0].label_ids) == len(words)
        for chunk in chunks:  # an owned word's label is the one its window gives on its own
            window = words[chunk.word_offset : chunk.word_offset + chunk.n_words]
            alone = run_policy(model, [window], ExitPolicy()).sentences[0].label_ids
            start, end = chunk.owned_words
            assert torch.equal(run.sentences[0].label_ids[start:end], alone[start - chunk.word_offset : end - chunk.word_offset])
    finally:
        model.pieces = original


def test_training_forward_with_given_exits_reproduces_the_engine(make_tagger, sentences):
    from seqexit.training.forward import exit_logits

    model = make_tagger(6)
    batch = batch_of(model, sentences)
    with torch.inference_mode():
        run = exit_batch(model, batch, ExitPolicy.tokee(_mid_threshold(model, batch), window=1))
        logits = exit_logits(model, batch, exit_layer=run.exit_layer)  # (layers, batch, words, labels)
    mask = batch.word_mask
    at_exit = logits.gather(0, (run.exit_layer - 1).clamp(min=0)[None, ..., None].expand(1, -1, -1, logits.shape[-1]))[0]
    assert len(set(run.exit_layer[mask].tolist())) > 1
    assert (at_exit - run.logits)[mask].abs().max() <= 1e-4


def test_simulated_exits_match_the_engine_where_nothing_copied_is_involved(make_tagger, sentences):
    from seqexit.exits import normalised_entropy
    from seqexit.exits.halting import simulate_tokee

    model = make_tagger(6)
    batch = batch_of(model, sentences)
    rows = len(sentences)
    windows = torch.ones(rows, dtype=torch.long)
    threshold = _mid_threshold(model, batch)
    with torch.inference_mode():
        uncertainty = normalised_entropy(model(batch))  # (layers, batch, words)
        engine = exit_batch(model, batch, ExitPolicy.tokee(threshold, window=1)).exit_layer
    never = simulate_tokee(uncertainty, batch.word_mask, torch.zeros(rows), windows)
    assert (never[batch.word_mask] == 6).all() and (never[~batch.word_mask] == 0).all()
    simulated = simulate_tokee(uncertainty, batch.word_mask, torch.full((rows,), threshold), windows)
    # layer 1 sees no copied state yet, so simulation and engine agree on who halts there
    assert (simulated == 1).any() and torch.equal(simulated == 1, engine == 1)
    assert (simulated[batch.word_mask] >= 1).all() and (simulated[~batch.word_mask] == 0).all()


@pytest.mark.parametrize("mode", ["tokee", "sentee"])
@pytest.mark.parametrize("group_size", [1, 2, 4])
def test_regrouping_rows_layer_by_layer_changes_nothing(make_tagger, sentences, mode, group_size):
    model = make_tagger(6)
    many = [s[i:] + s[:i] for i in range(3) for s in sentences]  # 15 rows of varied lengths
    batch = batch_of(model, many)
    policy = ExitPolicy(mode=mode, threshold=_mid_threshold(model, batch), window=1)
    with torch.inference_mode():
        whole = exit_batch(model, batch, policy)
        grouped = exit_batch(model, batch, policy, group_size=group_size)
    mask = batch.word_mask
    assert len(set(whole.exit_layer[mask].tolist())) > 1, "the threshold halts words at several layers"
    assert torch.equal(grouped.exit_layer, whole.exit_layer)
    assert torch.equal(grouped.label_ids[mask], whole.label_ids[mask])
    assert (grouped.logits - whole.logits)[mask].abs().max() <= 1e-4
    assert grouped.flops.spent == whole.flops.spent


def test_tokee_flops_follow_the_formula_from_each_words_exit_layer(make_tagger, sentences):
    model = make_tagger(6)
    batch = batch_of(model, sentences)
    with torch.inference_mode():
        run = exit_batch(model, batch, ExitPolicy.tokee(_mid_threshold(model, batch), window=1))
    h, i, c = 32, 64, len(model.labels)
    expected = 0
    for row, sentence in enumerate(sentences):
        n = int(batch.attention_mask[row].sum())
        starts = batch.word_starts[row, : len(sentence)].tolist() + [n - 1]  # [SEP] ends the last word
        sizes = [b - a for a, b in zip(starts, starts[1:])]
        exits = run.exit_layer[row, : len(sentence)].tolist()
        for layer in range(max(exits)):  # the row runs until its last word halts
            a = 2 + sum(size for size, e in zip(sizes, exits) if e > layer)  # [CLS] and [SEP] run with the row
            expected += 4 * h * h * n + 4 * h * h * a + 4 * h * a * n + 4 * h * i * a
            expected += 2 * h * c * len(sentence)  # every word of a running row is read by the exit
    assert run.flops.spent == expected
    assert [int(s) for s in run.row_flops[0]] and sum(int(s) for s in run.row_flops[0]) == expected


@pytest.mark.parametrize("criterion", ["entropy", "confidence", "patience", "rising", "vote", "learned"])
@pytest.mark.parametrize("mode", ["tokee", "sentee"])
def test_batch_one_takes_the_one_sentence_loop_with_the_same_results(make_tagger, sentences, mode, criterion):
    """Batch 1 runs `_one_sentence`, larger batches `_dynamic`: same labels, exit layers, FLOPs."""
    import copy

    from seqexit.exits.learned import LearnedExitHeads

    model = copy.deepcopy(make_tagger(4))
    model.exit_temperatures = [0.5, 1.0, 2.0, 1.5]
    torch.manual_seed(0)
    model.learned_exits = LearnedExitHeads(model.adapter.hidden_size, 4).eval()
    setting = {"entropy": {"threshold": 0.9}, "confidence": {"threshold": 0.5}, "patience": {"patience": 1},
               "rising": {"patience": 1}, "vote": {"threshold": 0.1}, "learned": {"threshold": 0.5}}[criterion]
    policy = ExitPolicy(mode=mode, window=1, criterion=criterion, **setting)
    one, many = (run_policy(model, sentences, policy, batch_size=b) for b in (1, 32))
    assert [(r.label_ids.tolist(), r.exit_layer.tolist(), r.flops_spent) for r in one.sentences] == \
        [(r.label_ids.tolist(), r.exit_layer.tolist(), r.flops_spent) for r in many.sentences]
    assert one.flops.spent == many.flops.spent and min(l for r in one.sentences for l in r.exit_layer.tolist()) < 4
