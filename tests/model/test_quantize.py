"""The int8 engine on tiny random models: what gets quantized, that it matches the int8 full-depth
forward, that TOKEE still skips halted words on int8 kernels, and its errors."""

import pytest
import torch
from torch import nn

from seqexit.bundle import save_model
from seqexit import Tagger
from seqexit.exits import ExitPolicy, run_policy
from seqexit.exits.halting import exit_batch
from seqexit.exits.uncertainty import normalised_entropy
from seqexit.quantize import LAYER_PROJECTIONS, bucket_rows, check_quantize, quantize_model

INT8_TOLERANCE = 1e-4  # the same batch through the same int8 kernels: equal up to float summation order


def int8_modules(model) -> list[nn.Module]:
    return [m for m in model.encoder.modules() if type(m).__name__ == "Int8Linear"]


def test_quantize_replaces_every_layer_projection_and_leaves_the_float_model_alone(make_tagger):
    model = make_tagger(4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    quantized = quantize_model(model)
    assert quantized is not model and quantized.quantized == "int8" and model.quantized is None
    # query, attention output, feed-forward in and out per layer: 4 layers x 4, plus the fused key/value
    assert len(int8_modules(quantized)) == 4 * 4
    assert all(type(m).__name__ == "Int8Linear" for m in quantized.int8_key_values)
    assert not int8_modules(model), "the float model is not touched"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(isinstance(head.linear, nn.Linear) for head in quantized.exits), "exits stay in float"
    assert quantized.pieces is model.pieces, "the tokenizer is shared, not copied"


def test_keep_float_leaves_the_named_projections_in_float(make_tagger):
    quantized = quantize_model(make_tagger(4), keep_float={"ffn_out", "L1.query"})
    parts = quantized.adapter.layers
    assert all(isinstance(p.ffn_out, nn.Linear) for p in parts)
    assert isinstance(parts[0].query, nn.Linear) and not isinstance(parts[1].query, nn.Linear)
    assert len(int8_modules(quantized)) == 4 * 4 - 4 - 1
    with pytest.raises(ValueError, match="unknown projection.*choose from: " + ", ".join(LAYER_PROJECTIONS)):
        quantize_model(make_tagger(4), keep_float={"ffn_middle"})


def test_int8_tokee_at_threshold_zero_equals_the_int8_full_depth_forward(make_tagger, sentences):
    quantized = quantize_model(make_tagger(4))
    batch = quantized.pieces.collate([c for chunks in quantized.pieces.encode(sentences) for c in chunks])
    with torch.inference_mode():
        full = quantized(batch, exits="last")[0]  # (batch, words, labels)
        tokee = exit_batch(quantized, batch, ExitPolicy.tokee(0.0, window=1))
    mask = batch.word_mask
    assert torch.equal(tokee.label_ids[mask], full.argmax(-1)[mask])
    assert (tokee.logits[mask] - full[mask]).abs().max() <= INT8_TOLERANCE
    assert bool((tokee.exit_layer[mask] == 4).all())


def test_int8_stays_close_to_float(make_tagger, sentences):
    model = make_tagger(4)
    quantized = quantize_model(model)
    batch = model.pieces.collate([c for chunks in model.pieces.encode(sentences) for c in chunks])
    with torch.inference_mode():
        float_logits, int8_logits = model(batch)[:, batch.word_mask], quantized(batch)[:, batch.word_mask]
    assert not torch.equal(float_logits, int8_logits), "int8 kernels really ran"
    assert (float_logits - int8_logits).abs().max() < 0.05 * float_logits.abs().max()


def test_every_word_gets_one_label_on_int8_with_long_sentences(make_tagger, sentences):
    quantized = quantize_model(make_tagger(4))
    long = (sentences[0] + sentences[2]) * 8  # over the tiny model's 64 pieces: split into windows
    inputs = sentences + [long]
    for policy in (ExitPolicy(), ExitPolicy.static(2), ExitPolicy.tokee(0.3), ExitPolicy.sentee(0.3)):
        run = run_policy(quantized, inputs, policy, batch_size=2)
        assert [len(r.label_ids) for r in run.sentences] == [len(s) for s in inputs]
        assert all(int(r.exit_layer.min()) >= 1 for r in run.sentences)


def test_tokee_on_int8_runs_the_kernels_on_active_pieces_only(make_tagger, sentences):
    """Halting is not undone by the int8 kernels: after a layer where some words halt, the next
    layer's int8 feed-forward sees only the pieces of the words (and rows) still running."""
    quantized = quantize_model(make_tagger(4))
    batch = quantized.pieces.collate([c for chunks in quantized.pieces.encode(sentences) for c in chunks])
    rows_seen = []
    hook = quantized.adapter.layers[1].ffn_in.register_forward_hook(
        lambda module, args, out: rows_seen.append(args[0].reshape(-1, args[0].shape[-1]).shape[0]))
    try:
        with torch.inference_mode():
            full = exit_batch(quantized, batch, ExitPolicy.tokee(0.0, window=0))
            full_rows = rows_seen.pop()
            # halt about half of the words at layer 1: a threshold at their median uncertainty
            first = normalised_entropy(quantized(batch, num_layers=1)[0])[batch.word_mask]
            halting = exit_batch(quantized, batch, ExitPolicy.tokee([float(first.median()) + 1e-6, 0.0, 0.0, 0.0], window=0))
    finally:
        hook.remove()
    halted = (halting.exit_layer == 1) & batch.word_mask
    assert 0 < int(halted.sum()) and full_rows == batch.input_ids.numel()
    assert rows_seen and sum(rows_seen) < full_rows
    assert halting.flops.spent < full.flops.spent


def test_quantize_errors(make_tagger, tmp_path):
    assert check_quantize(None) is None and check_quantize("none") is None and check_quantize("int8") == "int8"
    with pytest.raises(ValueError, match="unknown quantize value 'int4'; choose one of: none, int8"):
        check_quantize("int4")
    quantized = quantize_model(make_tagger(4))
    with pytest.raises(ValueError, match="already quantized"):
        quantize_model(quantized)
    with pytest.raises(ValueError, match="cannot be saved"):
        save_model(quantized, tmp_path / "int8")
    with pytest.raises(ValueError, match="CPU only"):
        Tagger.load(tmp_path, device="cuda", quantize="int8")


def test_tagger_load_with_int8(make_tagger, sentences, tmp_path):
    folder = save_model(make_tagger(4), tmp_path / "model")
    tagger = Tagger.load(folder, quantize="int8")
    assert tagger.model.quantized == "int8"
    tagged = tagger.tag(sentences)
    assert [t.words for t in tagged] == sentences and [len(t.labels) for t in tagged] == [len(s) for s in sentences]
    with pytest.raises(ValueError, match="no int8 presets: run `seqexit calibrate .* --quantize int8`"):
        Tagger.load(folder, quantize="int8", preset="fast")


@pytest.mark.parametrize("quantized", [False, True], ids=["fp32", "int8"])
def test_padding_packed_rows_changes_no_result(make_tagger, sentences, quantized):
    """The engine may pad TOKEE's packed rows to a cached kernel size (`pad_rows`): the padded
    rows are computed and dropped, and every word's result stays what it was."""
    model = make_tagger(4)
    model = quantize_model(model) if quantized else quantize_model(model, None)
    batch = model.pieces.collate([c for chunks in model.pieces.encode(sentences) for c in chunks])
    with torch.inference_mode():
        first = normalised_entropy(model(batch, num_layers=1)[0])[batch.word_mask]
        policy = ExitPolicy.tokee([float(first.median()) + 1e-6, 0.2, 0.2, 0.0], window=0)
        saved = model.adapter.pad_rows
        try:
            model.adapter.pad_rows = None
            plain = exit_batch(model, batch, policy)
            model.adapter.pad_rows = lambda rows: rows + 13
            padded = exit_batch(model, batch, policy)
        finally:
            model.adapter.pad_rows = saved
    assert torch.equal(plain.exit_layer, padded.exit_layer) and torch.equal(plain.label_ids, padded.label_ids)
    assert (plain.logits - padded.logits)[batch.word_mask].abs().max() <= INT8_TOLERANCE


def test_bucket_rows_round_up_to_few_sizes():
    sizes = [bucket_rows(n) for n in range(1, 20000)]
    assert all(b >= n for n, b in zip(range(1, 20000), sizes))
    assert all(b - n < 16 for n, b in zip(range(1, 257), sizes))
    assert all(b <= n * 1.125 for n, b in zip(range(257, 20000), sizes[256:]))
    assert len(set(sizes[:4096])) <= 16 + 120, "few enough shapes for oneDNN's kernel cache"


def test_int8_linear_quantizes_each_row_on_its_own(make_tagger):
    """A row's int8 output does not depend on the other rows of the call (their number, their
    values or their order): activation scales are per row, not per call."""
    linear = quantize_model(make_tagger(4)).adapter.layers[0].ffn_in
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(300, linear.in_features, generator=generator) * torch.rand(300, 1, generator=generator) * 5
    x[7] = 0.0  # an all-zero row
    with torch.inference_mode():
        full = linear(x)
        for rows in (1, 2, 7, 8, 15, 16, 17, 100, 255):
            assert torch.equal(linear(x[:rows]), full[:rows]), rows
        order = torch.randperm(300, generator=generator)
        assert torch.equal(linear(x[order]), full[order])
        assert torch.equal(linear(x[None, :5]), full[None, :5]), "any leading shape"
        louder = x.clone()
        louder[1:] *= 100.0  # the other rows' range changes nothing for row 0
        assert torch.equal(linear(louder)[0], full[0])


def _mixed_sentences(sentences: list[list[str]], count: int = 40) -> list[list[str]]:
    from tests.conftest import WORDS

    generator = torch.Generator().manual_seed(1)
    words = WORDS + [w for s in sentences for w in s]
    return sentences + [
        [words[i] for i in torch.randint(len(words), (int(torch.randint(1, 30, (1,), generator=generator)),), generator=generator)]
        for _ in range(count)
    ]


@pytest.mark.parametrize("policy", [ExitPolicy(), ExitPolicy.tokee(0.3), ExitPolicy.tokee(0.3, window=0)],
                         ids=["full-depth", "tokee", "tokee-window0"])
def test_int8_labels_and_exit_layers_do_not_depend_on_the_batch(make_tagger, sentences, policy):
    """Each sentence gets the same int8 labels and exit layers alone (batch 1), in batches of 8, and
    among other sentences (a different order, so other batch neighbours and packed rows)."""
    quantized = quantize_model(make_tagger(4))
    inputs = _mixed_sentences(sentences)
    alone = run_policy(quantized, inputs, policy, batch_size=1).sentences
    order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(2)).tolist()
    for batch_size, order in ((8, list(range(len(inputs)))), (8, order), (32, order)):
        batched = run_policy(quantized, [inputs[i] for i in order], policy, batch_size=batch_size).sentences
        for result, i in zip(batched, order):
            assert torch.equal(result.label_ids, alone[i].label_ids), (batch_size, i)
            assert torch.equal(result.exit_layer, alone[i].exit_layer), (batch_size, i)
            # float attention over differently padded batches: equal up to summation order
            assert (result.confidence - alone[i].confidence).abs().max() <= INT8_TOLERANCE, (batch_size, i)
