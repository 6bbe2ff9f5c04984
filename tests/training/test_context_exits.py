"""Context exits (`ExitHead.context`, `seqexit.training.context_exits`) on tiny random models:
full depth untouched, the same labels at every batch size, saved and loaded, and the command."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from typer.testing import CliRunner

from cli.main import app
from seqexit.bundle import load_model, save_model
from seqexit.exits import ExitPolicy, run_policy
from seqexit.model import ExitHead, with_neighbours
from seqexit.training.context_exits import train_context_exits, widen_exit

LAYERS = 4


def exits_of(run):
    return [r.exit_layer.tolist() for r in run.sentences], [r.label_ids.tolist() for r in run.sentences]


@pytest.fixture(scope="module")
def widened(make_tagger):
    """A copy of the tiny 4-layer tagger, its exits below the last re-fitted with one word of context."""
    from tests.conftest import EXIT_SENTENCES

    model = copy.deepcopy(make_tagger(LAYERS))
    model.exit_temperatures = [1.0] * LAYERS
    before = run_policy(model, [list(s) for s in EXIT_SENTENCES], ExitPolicy())
    result = train_context_exits(model, [list(s) for s in EXIT_SENTENCES] * 8, context=1, epochs=3,
                                 learning_rate=1e-2, batch_size=4)
    return model, result, before


def test_with_neighbours_reads_the_words_around_with_zeros_past_the_ends():
    words = torch.arange(1, 7, dtype=torch.float).view(1, 3, 2)  # (batch, words, hidden): w0=(1,2) w1=(3,4) w2=(5,6)
    got = with_neighbours(words, 1)
    assert got.shape == (1, 3, 6)
    assert got[0].tolist() == [[0, 0, 1, 2, 3, 4], [1, 2, 3, 4, 5, 6], [3, 4, 5, 6, 0, 0]]


@pytest.mark.parametrize("shape", [dict(context=1), dict(context=2, past=True), dict(context=3, past=True, future=4)])
def test_inference_reads_a_wide_exit_by_parts_as_its_features_would(shape):
    """Out of training the exit never builds the (2k+1)-wide features; the logits are the same."""
    torch.manual_seed(0)
    head = ExitHead(8, 5, 0.1, **shape)
    for parameter in head.parameters():
        torch.nn.init.normal_(parameter)
    words, past = torch.randn(3, 7, 8), torch.randn(3, 7, 8)
    by_parts = head.eval()(words, past=past)
    assert torch.allclose(by_parts, head.linear(head.features(words, past)), atol=1e-4)
    present = torch.ones(3, 7, dtype=torch.bool)
    present[:, 5:] = False  # padding: the words before it read zeros there
    masked = head.linear(head.features(words * present[..., None], past))
    assert torch.allclose(head(words, past=past, present=present)[present], masked[present], atol=1e-4)
    words[:, 3] += 1.0  # a word moves only its own logits and its neighbours'
    moved = (head(words, past=past) - by_parts).abs().amax(-1) > 1e-3  # (3, 7)
    reach = {3 + d for d in range(-shape["context"], shape["context"] + 1)}
    assert moved.all(0).tolist() == [i in reach for i in range(7)]


def test_a_widened_exit_starts_as_the_exit_it_replaces():
    torch.manual_seed(0)
    head = ExitHead(8, 5, 0.1).eval()
    wide = widen_exit(head, 2).eval()
    words = torch.randn(3, 7, 8)
    assert wide.context == 2 and wide.linear.in_features == 5 * 8
    assert torch.allclose(wide(words), head(words), atol=1e-6)


def test_context_exits_leave_full_depth_bit_for_bit(widened, sentences):
    model, result, before = widened
    assert model.config.exit_context == [1, 1, 1, 0] == result.context
    assert model.exit_temperatures is None, "temperatures of the old exits are dropped"
    after = run_policy(model, sentences, ExitPolicy())
    assert exits_of(after) == exits_of(before)
    assert all(torch.equal(a.confidence, b.confidence) for a, b in zip(after.sentences, before.sentences))


def test_context_exits_learn_the_last_exit(widened):
    _, result, _ = widened
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    assert sum(result.agreement_after) > sum(result.agreement_before)


@pytest.mark.parametrize("policy", [ExitPolicy.tokee(0.9, window=1), ExitPolicy.sentee(0.9), ExitPolicy.static(1)],
                         ids=["tokee", "sentee", "static"])
def test_context_exits_give_the_same_labels_at_every_batch_size(widened, sentences, policy):
    model, _, _ = widened
    runs = [exits_of(run_policy(model, sentences, policy, batch_size=size)) for size in (1, 2, 32)]
    assert runs[0] == runs[1] == runs[2], "a padded neighbour reads zeros, as past a sentence's end"
    assert [len(labels) for labels in runs[0][1]] == [len(s) for s in sentences]


def test_a_context_exit_reads_exactly_its_neighbours(widened, sentences):
    model, _, _ = widened
    run = run_policy(model, sentences, ExitPolicy.static(1), batch_size=32)
    words = sentences[0]
    batch = model.pieces.collate(model.pieces.encode([words])[0])
    states = next(iter(model.layer_states(batch, 1)))[0]  # (pieces, hidden)
    at_words = states[batch.word_starts[0]]  # (words, hidden)
    padded = torch.cat([torch.zeros(1, at_words.shape[1]), at_words, torch.zeros(1, at_words.shape[1])])
    by_hand = torch.stack([padded[i:i + 3].reshape(-1) for i in range(len(words))]) @ model.exits[0].linear.weight.T
    by_hand = by_hand + model.exits[0].linear.bias
    assert run.sentences[0].label_ids.tolist() == by_hand.argmax(-1).tolist()


def test_context_exits_save_load_and_compact(widened, sentences, tmp_path):
    model, _, _ = widened
    policy = ExitPolicy.tokee(0.9, window=1)
    want = exits_of(run_policy(model, sentences, policy))
    folder = save_model(model, tmp_path / "model")
    assert json.loads((folder / "seqexit.json").read_text())["exit_context"] == [1, 1, 1, 0]
    loaded = load_model(folder)
    assert [head.context for head in loaded.exits] == [1, 1, 1, 0]
    assert exits_of(run_policy(loaded, sentences, policy)) == want
    assert loaded.training_record["context_exits"]["context"] == 1
    compact = load_model(save_model(model, tmp_path / "compact", compact_against=model.config.backbone))
    assert [head.context for head in compact.exits] == [1, 1, 1, 0]
    assert all(torch.equal(a.linear.weight, b.linear.weight) for a, b in zip(compact.exits, model.exits)), "exits whole"


def test_a_bad_exit_context_in_a_folder_is_a_clear_error(widened, tmp_path):
    model, _, _ = widened
    folder = save_model(model, tmp_path / "model")
    config = json.loads((folder / "seqexit.json").read_text())
    for bad, message in (([1, 1, 1], "one entry per layer"), ([1, -1, 1, 0], "exit_context must list integers"),
                         ("wide", "exit_context must be list")):
        (folder / "seqexit.json").write_text(json.dumps({**config, "exit_context": bad}))
        with pytest.raises(ValueError, match=message):
            load_model(folder)
    for field, bad, message in (("exit_hidden", [8, -1, 8, 0], "exit hidden must be an integer"),
                                ("exit_past", [True, 1, True, False], "exit past must be true or false"),
                                ("exit_future", [4, 4], "one entry per layer"), ("exit_past", "yes", "exit_past must be list")):
        (folder / "seqexit.json").write_text(json.dumps({**config, field: bad}))
        with pytest.raises(ValueError, match=message):
            load_model(folder)


@pytest.mark.parametrize("criterion", ["entropy", "signals"])
def test_exit_graphs_run_context_exits_in_one_call(widened, sentences, criterion):
    """The exit graphs read the neighbours' states as the torch exits do: same labels and exit
    layers at batch 1, 2 and 32, with no layer-by-layer call (the layer sessions are gone)."""
    pytest.importorskip("onnxruntime")
    from seqexit.exits.signals import HaltingSignals
    from seqexit.runtime import apply_runtime

    model, _, _ = widened
    model = copy.deepcopy(model)
    torch.manual_seed(0)
    model.halting_signals = HaltingSignals(len(model.labels), LAYERS).eval()
    onnx = apply_runtime(model, "onnx")
    onnx.adapter.sessions = [None] * LAYERS  # a layer-by-layer call would fail
    threshold = {"entropy": 0.9, "signals": 0.5}[criterion]
    policies = (ExitPolicy(), ExitPolicy.static(2), ExitPolicy.tokee(threshold, window=1, criterion=criterion),
                ExitPolicy.sentee(threshold, criterion=criterion))
    for policy in policies:
        assert onnx.adapter.exit_graphs.spec(policy) is not None
        for batch_size in (1, 2, 32):
            got = exits_of(run_policy(onnx, sentences, policy, batch_size=batch_size))
            assert got == exits_of(run_policy(model, sentences, policy, batch_size=batch_size)), (policy, batch_size)
    layers = exits_of(run_policy(model, sentences, policies[2]))[0]
    assert min(min(row) for row in layers) < LAYERS, "the setting halts words: halting is exercised"


def test_context_exits_command(make_tagger, tmp_path):
    source = save_model(make_tagger(LAYERS), tmp_path / "model")
    text = tmp_path / "text.txt"
    text.write_text("john smith was in berlin .\nthe european union said it was new .\n")
    out = tmp_path / "wide"
    result = CliRunner().invoke(app, ["context-exits", str(source), str(text), "-o", str(out), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "before -> after" in result.output and [h.context for h in load_model(out).exits] == [1, 1, 1, 0]
    info = CliRunner().invoke(app, ["info", str(out)])
    assert "exits that see more: context 1," in info.output, info.output
    assert "1: context 1 | 2: context 1 | 3: context 1 | 4: linear" in info.output
    again = CliRunner().invoke(app, ["context-exits", str(source), str(text), "-o", str(out)])
    assert again.exit_code == 2 and "is not an empty folder" in again.output
    missing = CliRunner().invoke(app, ["context-exits", str(source), str(tmp_path / "nope.txt"), "-o", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "no such file" in missing.output


SEE_MORE = {"context": 1, "past": True, "future": 8, "hidden": 8}


@pytest.fixture(scope="module")
def sees_more(make_tagger):
    """The tiny tagger's lower exits re-fitted to read neighbours, past, a future imitation and a hidden layer."""
    from tests.conftest import EXIT_SENTENCES

    model = copy.deepcopy(make_tagger(LAYERS))
    before = run_policy(model, [list(s) for s in EXIT_SENTENCES], ExitPolicy())
    result = train_context_exits(model, [list(s) for s in EXIT_SENTENCES] * 8, epochs=3, learning_rate=1e-2,
                                 batch_size=4, **SEE_MORE)
    return model, result, before


def test_an_exit_that_sees_more_starts_as_the_exit_it_replaces():
    torch.manual_seed(0)
    head = ExitHead(8, 5, 0.1).eval()
    wide = widen_exit(head, 1, past=True, future=6, hidden=4).eval()
    words, past = torch.randn(3, 7, 8), torch.randn(3, 7, 8)
    assert wide.linear.in_features == (3 + 1 + 1) * 8
    assert torch.allclose(wide(words, past=past), head(words), atol=1e-6)
    with pytest.raises(ValueError, match="reads the past"):
        wide(words)


def test_exits_that_see_more_leave_full_depth_bit_for_bit_and_learn(sees_more, sentences):
    model, result, before = sees_more
    assert [s.to_dict() for s in result.shapes[:-1]] == [{**SEE_MORE}] * (LAYERS - 1) and result.shapes[-1].plain
    assert model.config.exit_past == [True, True, True, False] and model.config.exit_hidden == [8, 8, 8, 0]
    assert exits_of(run_policy(model, sentences, ExitPolicy())) == exits_of(before)
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    assert sum(result.agreement_after) > sum(result.agreement_before)


def test_the_past_an_exit_reads_is_the_mean_of_the_states_below(sees_more, sentences):
    model, _, _ = sees_more
    words = sentences[0]
    batch = model.pieces.collate(model.pieces.encode([words])[0])
    embedded = model.adapter.embed(batch.input_ids, batch.casing_ids)
    first, second = list(model.layer_states(batch, 2))
    at = batch.word_starts[0]
    past = (embedded[0, at] + first[0, at]) / 2  # exit 2 reads the embeddings and layer 1
    by_hand = model.exits[1](second[0, at][None], past=past[None])[0]
    run = run_policy(model, [words], ExitPolicy.static(2))
    assert run.sentences[0].label_ids.tolist() == by_hand.argmax(-1).tolist()
    assert torch.allclose(run.sentences[0].confidence, by_hand.softmax(-1).max(-1).values, atol=1e-5)


@pytest.mark.parametrize("policy", [ExitPolicy.tokee(0.9, window=1), ExitPolicy.sentee(0.9), ExitPolicy.static(2)],
                         ids=["tokee", "sentee", "static"])
def test_exits_that_see_more_give_the_same_labels_on_every_path(sees_more, sentences, policy):
    """Batch 1 (one sentence), groups of rows, and the training forward read the same past."""
    from seqexit.training.forward import exit_logits

    model, _, _ = sees_more
    runs = [exits_of(run_policy(model, sentences, policy, batch_size=size)) for size in (1, 2, 32)]
    assert runs[0] == runs[1] == runs[2]
    assert [len(labels) for labels in runs[0][1]] == [len(s) for s in sentences]
    exit_layer = torch.tensor([layers + [0] * (max(map(len, runs[0][0])) - len(layers)) for layers in runs[0][0]])
    batch = model.pieces.collate([chunks[0] for chunks in model.pieces.encode(sentences)])
    with torch.no_grad():
        logits = exit_logits(model, batch, exit_layer=exit_layer.clamp(min=1))  # (exits, batch, words, labels)
    picked = logits.gather(0, (exit_layer.clamp(min=1) - 1)[None, ..., None].expand(1, *logits.shape[1:]))[0].argmax(-1)
    assert [picked[row, :len(s)].tolist() for row, s in enumerate(sentences)] == runs[0][1]


def test_exits_that_see_more_save_and_load(sees_more, sentences, tmp_path):
    model, _, _ = sees_more
    policy = ExitPolicy.tokee(0.9, window=1)
    want = exits_of(run_policy(model, sentences, policy))
    loaded = load_model(save_model(model, tmp_path / "model"))
    assert [h.shape for h in loaded.exits] == [h.shape for h in model.exits]
    assert exits_of(run_policy(loaded, sentences, policy)) == want
    compact = load_model(save_model(model, tmp_path / "compact", compact_against=model.config.backbone))
    assert exits_of(run_policy(compact, sentences, policy)) == want


def test_exits_that_see_more_charge_their_flops(sees_more, make_tagger, sentences):
    model, _, _ = sees_more
    plain = make_tagger(LAYERS)
    head, linear = model.exits[0], plain.exits[0]
    assert head.flops_per_word() > linear.flops_per_word() == 2 * linear.hidden_size * linear.num_labels
    policy = ExitPolicy.tokee(0.0)  # nothing halts: every exit reads every word
    wide, narrow = run_policy(model, sentences, policy), run_policy(plain, sentences, policy)
    assert wide.flops.spent > narrow.flops.spent and wide.flops.full == narrow.flops.full
    assert run_policy(model, sentences, ExitPolicy()).flops.speedup == pytest.approx(1.0)


def test_the_command_gives_exits_past_future_and_hidden(make_tagger, tmp_path):
    source = save_model(make_tagger(LAYERS), tmp_path / "model")
    text = tmp_path / "text.txt"
    text.write_text("john smith was in berlin .\nthe european union said it was new .\n")
    out = tmp_path / "more"
    result = CliRunner().invoke(app, ["context-exits", str(source), str(text), "-o", str(out), "--epochs", "1",
                                      "--context", "0", "--past", "--future", "4", "--hidden", "4"])
    assert result.exit_code == 0, result.output
    assert [h.shape.describe() for h in load_model(out).exits] == ["past, future 4, hidden 4"] * 3 + ["linear"]
    info = CliRunner().invoke(app, ["info", str(out)])
    assert "1: past, future 4, hidden 4" in info.output and "exits that see more: context 0, past, future 4" in info.output
    nothing = CliRunner().invoke(app, ["context-exits", str(source), str(text), "-o", str(tmp_path / "x"), "--context", "0"])
    assert nothing.exit_code == 2 and "nothing to learn" in nothing.output


def test_onnx_runs_exits_that_see_more_layer_by_layer(sees_more, sentences):
    pytest.importorskip("onnxruntime")
    from seqexit.runtime import apply_runtime

    model, _, _ = sees_more
    onnx = apply_runtime(model, "onnx")
    assert onnx.adapter.exit_graphs.spec(ExitPolicy.tokee(0.9)) is None
    for policy in (ExitPolicy.tokee(0.9, window=1), ExitPolicy.static(2)):
        assert exits_of(run_policy(onnx, sentences, policy)) == exits_of(run_policy(model, sentences, policy))


def test_trained_criteria_learn_on_exits_that_see_more(sees_more, sentences):
    from seqexit.training.halting_signals import train_halting_signals
    from seqexit.training.learned_exits import train_learned_exits

    model = copy.deepcopy(sees_more[0])
    model.learned_exits = train_learned_exits(model, sentences, epochs=1).heads
    model.halting_signals = train_halting_signals(model, sentences, epochs=1).signals
    for criterion in ("learned", "signals"):
        run = run_policy(model, sentences, ExitPolicy.tokee(0.5, criterion=criterion))
        assert [len(r.label_ids) for r in run.sentences] == [len(s) for s in sentences]
