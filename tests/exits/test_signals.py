"""The "signals" criterion (`seqexit.exits.signals`, `seqexit.training.halting_signals`) on
tiny random models: its features by hand, exact where it never halts, batch-size invariant, the
engine reads what training read, saved and loaded, and through the CLI."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from typer.testing import CliRunner

from cli.main import app
from seqexit.bundle import HALTING_SIGNALS_FILE, load_model, save_model
from seqexit.exits import ExitPolicy, run_policy
from seqexit.exits.signals import HaltingSignals, num_signals, signal_features
from seqexit.training.halting_signals import corpus_signals, train_halting_signals

LAYERS = 4


def exits_of(run):
    return [r.exit_layer.tolist() for r in run.sentences], [r.label_ids.tolist() for r in run.sentences]


@pytest.fixture(scope="module")
def trained(make_tagger):
    from tests.conftest import EXIT_SENTENCES

    model = copy.deepcopy(make_tagger(LAYERS))
    result = train_halting_signals(model, [list(s) for s in EXIT_SENTENCES] * 4, epochs=30, learning_rate=1e-2)
    model.halting_signals = result.signals
    return model, result


def test_signal_features_by_hand():
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 3.0, 1.0], [9.0, 9.0, 9.0]]])  # (1, 4 words, 3)
    mask = torch.tensor([[True, True, True, False]])  # the 4th word is padding
    below = {"entropy": torch.full((1, 4), 0.25), "top": torch.full((1, 4), 0.5), "label": torch.tensor([[0, 1, 1, 0]]),
             "streak": torch.tensor([[2.0, 1.0, 1.0, 5.0]])}
    features, now = signal_features(logits, below, mask)
    assert features.shape == (1, 4, num_signals(3)) == (1, 4, 15)
    assert num_signals(3, streak=False) == 14
    probs = logits.softmax(-1)
    entropy = -(probs * probs.log()).sum(-1) / math.log(3)
    w = features[0]
    assert torch.allclose(w[:3, 0], entropy[0, :3]) and torch.allclose(w[:3, 1], probs[0, :3].max(-1).values)
    assert math.isclose(float(w[2, 2]), float(probs[0, 2, 1] - probs[0, 2, 2]), rel_tol=1e-6), "margin: top two"
    assert w[0, 3:6].tolist() == [1, 0, 0] and w[2, 3:6].tolist() == [0, 1, 0], "the label, one-hot"
    assert w[3, 3:6].tolist() == [0, 0, 0], "padding has no label"
    assert w[0, 6:9].tolist() == [0.25, 0.5, 1.0] and w[1, 8] == 0.0, "the exit below: doubt, top, same label"
    assert w[0, 9] == 0.0 and math.isclose(float(w[0, 10]), float(entropy[0, 1]), rel_tol=1e-6), "neighbours' entropy"
    assert w[2, 10] == 0.0, "the word after the last real word is padding: zero"
    assert w[1, 11:14].tolist() == [1, 0, 0] and w[0, 11:14].tolist() == [0, 0, 0], "the word before's label"
    assert now["label"].tolist() == [[0, 0, 1, 0]]
    assert now["streak"][0, :3].tolist() == [3, 1, 2], "the same label as below: one more than its streak; else 1"
    assert torch.allclose(w[:3, 14], torch.tensor([2 / 3, 0.0, 0.5])), "the streak, as 1 - 1/streak"
    first, first_now = signal_features(logits, None, mask)
    assert first[0, :, 6:9].abs().sum() == 0, "the first exit has no exit below"
    assert first_now["streak"].eq(1).all() and first[0, :, 14].eq(0).all(), "the first exit starts every streak"


def test_halting_signals_learn(trained):
    _, result = trained
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    assert len(result.agreement) == LAYERS - 1 and all(0 <= a <= 1 for a in result.agreement)


def test_signals_never_halting_equals_full_depth_and_always_halting_stops_at_one(trained, sentences):
    model, _ = trained
    full = exits_of(run_policy(model, sentences, ExitPolicy()))
    for mode in ("tokee", "sentee"):
        never = run_policy(model, sentences, ExitPolicy(mode=mode, threshold=1.0, window=1, criterion="signals"))
        assert exits_of(never) == full, mode
    eager = run_policy(model, sentences, ExitPolicy.tokee(0.0, window=0, criterion="signals"))
    assert {layer for r in eager.sentences for layer in r.exit_layer.tolist()} == {1}


@pytest.mark.parametrize("mode", ["tokee", "sentee"])
def test_signals_give_the_same_exits_at_every_batch_size(trained, sentences, mode):
    model, _ = trained
    policy = ExitPolicy(mode=mode, threshold=0.6, window=1, criterion="signals")
    runs = [exits_of(run_policy(model, sentences, policy, batch_size=size)) for size in (1, 2, 32)]
    assert runs[0] == runs[1] == runs[2]
    assert [len(labels) for labels in runs[0][1]] == [len(s) for s in sentences], "one label per word"


def test_the_engine_reads_the_signals_training_read(trained, sentences):
    """At layer 1 every word is active, so the engine's first halting decisions (window 0) are
    the trained heads' verdicts on the features `corpus_signals` gives."""
    model, _ = trained
    features, _ = corpus_signals(model, sentences)  # (layers - 1, words, signals)
    with torch.no_grad():
        doubt = 1.0 - torch.sigmoid(model.halting_signals(0, features[0]))
    for threshold in (0.3, 0.5, 0.7):
        run = run_policy(model, sentences, ExitPolicy.tokee(threshold, window=0, criterion="signals"), batch_size=2)
        halted_first = torch.cat([r.exit_layer for r in run.sentences]).eq(1)
        assert halted_first.tolist() == (doubt < 1.0 - threshold).tolist(), threshold


def test_signals_save_load_and_a_model_without_them(trained, make_tagger, sentences, tmp_path):
    model, result = trained
    folder = save_model(model, tmp_path / "model")
    assert (folder / HALTING_SIGNALS_FILE).is_file()
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as weights:
        assert not [k for k in weights.keys() if k.startswith("halting_signals.")], "the heads have their own file"
    loaded = load_model(folder)
    assert all(torch.equal(a, b) for a, b in zip(loaded.halting_signals.state_dict().values(),
                                                 result.signals.state_dict().values()))
    policy = ExitPolicy.tokee(0.6, window=1, criterion="signals")
    assert exits_of(run_policy(loaded, sentences, policy)) == exits_of(run_policy(model, sentences, policy))
    with pytest.raises(ValueError, match="needs its trained heads: run `seqexit learn-exits MODEL DATA --criterion signals`"):
        run_policy(make_tagger(LAYERS), sentences, policy)
    from safetensors.torch import save_file

    save_file(HaltingSignals(len(model.labels) + 1, LAYERS).state_dict(), str(folder / HALTING_SIGNALS_FILE))  # another label set
    with pytest.raises(ValueError, match=f"{HALTING_SIGNALS_FILE} does not fit this model"):
        load_model(folder)  # ...is refused, naming the file


def test_learn_exits_signals_command_then_tag_and_calibrate(make_tagger, tmp_path):
    folder = save_model(make_tagger(LAYERS), tmp_path / "model")
    text = tmp_path / "text.txt"
    text.write_text("john smith was in berlin .\nthe european union said it was new .\n")
    dev = tmp_path / "dev.conll"
    dev.write_text("john B-PER\nsmith I-PER\nwas O\nin O\nberlin B-LOC\n\nthe O\nunion B-ORG\nsaid O\n")
    refused = CliRunner().invoke(app, ["calibrate", str(folder), str(dev), "--criterion", "signals"])
    assert refused.exit_code == 2 and "--criterion signals needs its heads" in refused.output, refused.output
    result = CliRunner().invoke(app, ["learn-exits", str(folder), str(text), "--criterion", "signals", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert "--criterion signals" in result.output and load_model(folder).halting_signals is not None
    info = CliRunner().invoke(app, ["info", str(folder), "--json"])
    assert json.loads(info.stdout)["criterion_heads"] == ["signals"]
    tagged = CliRunner().invoke(app, ["tag", str(text), "-m", str(folder), "--mode", "tokee", "--criterion", "signals",
                                      "--threshold", "0.5", "-f", "jsonl"])
    assert tagged.exit_code == 0, tagged.output
    assert [len(json.loads(line)["labels"]) for line in tagged.stdout.splitlines()] == [6, 8]
    bad = CliRunner().invoke(app, ["learn-exits", str(folder), str(text), "--criterion", "hidden"])
    assert bad.exit_code == 2 and "--criterion must be learned or signals" in bad.output


def test_heads_without_the_streak_still_load_and_read_what_they_were_fitted_on(make_tagger, sentences, tmp_path):
    """Heads fitted before the streak existed (the shipped models' files) load, read the first
    signals only, and halt where a model without the streak would."""
    from tests.conftest import EXIT_SENTENCES

    model = copy.deepcopy(make_tagger(LAYERS))
    result = train_halting_signals(model, [list(s) for s in EXIT_SENTENCES], epochs=3, streak=False)
    assert result.signals.width == num_signals(len(model.labels), streak=False)
    model.halting_signals = result.signals
    folder = save_model(model, tmp_path / "model")
    loaded = load_model(folder)
    assert loaded.halting_signals.width == num_signals(len(model.labels), streak=False)
    features, _ = corpus_signals(model, sentences)  # (layers - 1, words, signals), the streak last
    with torch.no_grad():
        assert torch.equal(loaded.halting_signals(1, features[1]), result.signals.heads[1](features[1, :, :-1])[:, 0])
    policy = ExitPolicy.tokee(0.6, window=1, criterion="signals")
    assert exits_of(run_policy(loaded, sentences, policy)) == exits_of(run_policy(model, sentences, policy))
