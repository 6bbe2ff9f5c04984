"""Exit criteria per word (entropy, confidence, patience, rising, vote) on tiny random models,
temperature scaling, and the policy's and CLI's errors."""

import json

import pytest
import torch
from typer.testing import CliRunner

from seqexit.bundle import LEARNED_EXITS_FILE, TEMPERATURES_FILE, load_model, save_model
from seqexit.exits import ExitPolicy, run_policy
from seqexit.exits.criteria import CRITERIA, criterion_step
from seqexit.evaluation.temperature import expected_calibration_error, fit_temperature, fit_temperatures
from seqexit.model import MultiExitTagger
from seqexit.data import Sentence

LAYERS = 4
NEVER_HALT = {  # per criterion, a setting under which no word can halt before the last layer
    "entropy": {"threshold": 0.0},
    "confidence": {"threshold": 1.0},
    "patience": {"patience": LAYERS},
    "rising": {"patience": LAYERS},
    "vote": {"threshold": 1.0},
}


def exits_of(run):
    return [r.exit_layer.tolist() for r in run.sentences], [r.label_ids.tolist() for r in run.sentences]


UNTRAINED = [c for c in CRITERIA if c not in ("learned", "signals")]  # trained heads: their own tests


@pytest.mark.parametrize("mode", ["tokee", "sentee"])
@pytest.mark.parametrize("criterion", UNTRAINED)
def test_a_setting_that_never_halts_equals_full_depth(make_tagger, sentences, criterion, mode):
    model = make_tagger(LAYERS)
    model.exit_temperatures = [0.5, 1.0, 2.0, 1.5]
    policy = ExitPolicy(mode=mode, window=1, criterion=criterion, **NEVER_HALT[criterion])
    layers, labels = exits_of(run_policy(model, sentences, policy, batch_size=2))
    full_layers, full_labels = exits_of(run_policy(model, sentences, ExitPolicy(), batch_size=2))
    assert layers == full_layers and labels == full_labels


@pytest.mark.parametrize("criterion", UNTRAINED)
def test_every_criterion_halts_some_words_when_lenient(make_tagger, sentences, criterion):
    model = make_tagger(LAYERS)
    lenient = {"entropy": {"threshold": 1.01}, "confidence": {"threshold": 0.0}, "patience": {"patience": 1},
               "rising": {"patience": 1}, "vote": {"threshold": 0.0}}[criterion]
    run = run_policy(model, sentences, ExitPolicy.tokee(window=0, criterion=criterion, **lenient), batch_size=2)
    layers = torch.cat([r.exit_layer for r in run.sentences])
    assert int(layers.min()) < LAYERS and [len(r.label_ids) for r in run.sentences] == [len(s) for s in sentences]
    assert run.flops.spent < run.flops.full


def full_forward_labels(model, sentences):
    """(layers, words) label ids of every exit for each sentence, from one full forward."""
    out = []
    for words in sentences:
        batch = model.pieces.collate([c for c in model.pieces.encode([words])[0]])
        with torch.inference_mode():
            out.append(model(batch)[:, 0, : len(words)].argmax(-1))
    return out


def test_patience_one_halts_a_sentence_at_its_first_unchanged_labels(make_tagger, sentences):
    """SENTEE runs every word exactly as full depth until the sentence leaves, so patience 1
    must stop a sentence at the first layer where no word's label changed from the one before."""
    model = make_tagger(LAYERS)
    run = run_policy(model, sentences, ExitPolicy.sentee(criterion="patience", patience=1), batch_size=2)
    for labels, result in zip(full_forward_labels(model, sentences), run.sentences):
        same = [bool(labels[layer].eq(labels[layer - 1]).all()) for layer in range(1, LAYERS)]
        expected = next((layer + 2 for layer, s in enumerate(same) if s), LAYERS)
        assert result.exit_layer.tolist() == [expected] * len(labels[0])
        assert result.label_ids.tolist() == labels[expected - 1].tolist()


def test_patience_one_under_tokee_halts_unchanged_words_at_layer_two(make_tagger, sentences):
    model = make_tagger(LAYERS)
    run = run_policy(model, sentences, ExitPolicy.tokee(window=0, criterion="patience", patience=1), batch_size=2)
    for labels, result in zip(full_forward_labels(model, sentences), run.sentences):
        unchanged = labels[1].eq(labels[0])  # layers 1-2 run every word, as in full depth
        assert (result.exit_layer == 2).tolist() == unchanged.tolist()


def test_criterion_steps_by_hand():
    logits = torch.tensor([[[4.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])  # (1 row, 2 words, 3 labels)
    confidence = criterion_step("confidence", {}, logits, 0, 4, None, [2.0, 1, 1, 1])["doubt"]
    expected = 1 - torch.softmax(torch.tensor([2.0, 0, 0]), 0)[0]
    assert confidence[0, 0].item() == pytest.approx(expected.item()) and confidence[0, 1].item() == pytest.approx(2 / 3)
    state = {"votes": torch.zeros(1, 2, 3)}
    for layer in range(3):  # three exits agree on label 0 for word 0: lead 1+2+3 of 1+2+3+4
        state = criterion_step("vote", state, logits, layer, 4, None, None)
    assert state["doubt"][0, 0].item() == pytest.approx(1 - 6 / 10)
    rising = {"count": torch.zeros(1, 2, dtype=torch.long), "probs": torch.zeros(1, 2, 3)}
    rising = criterion_step("rising", rising, logits, 0, 4, 1, None)
    assert rising["count"].tolist() == [[0, 0]], "the first exit has nothing to rise from"
    rising = criterion_step("rising", rising, logits * 2, 1, 4, 1, None)
    assert rising["count"].tolist() == [[1, 0]] and rising["doubt"].tolist() == [[0.0, 1.0]]


def test_policy_criterion_round_trip_and_errors():
    for policy in (ExitPolicy.tokee(0.9, criterion="confidence"), ExitPolicy.sentee(criterion="rising", patience=2),
                   ExitPolicy.tokee(0.4, window=0, criterion="vote")):
        assert ExitPolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy
    assert "criterion" not in ExitPolicy.tokee(0.1).to_dict(), "entropy policies read as before"
    with pytest.raises(ValueError, match="criterion must be one of entropy, confidence, patience, rising, vote, learned, signals"):
        ExitPolicy.tokee(criterion="bogus")
    with pytest.raises(ValueError, match="needs patience >= 1"):
        ExitPolicy.tokee(criterion="patience", patience=0)
    with pytest.raises(ValueError, match="patience is for the criteria patience and rising"):
        ExitPolicy.tokee(0.1, patience=2)
    assert ExitPolicy.tokee(0.9, criterion="confidence", min_layer=3).doubt_bounds(4) == pytest.approx([0, 0, 0.1, 0.1])


def test_temperature_scaling_lowers_nll_on_a_fixed_fixture():
    generator = torch.Generator().manual_seed(0)
    gold = torch.randint(0, 5, (2000,), generator=generator)
    logits = torch.randn(2000, 5, generator=generator)
    logits[torch.arange(2000), gold] += 1.5  # informative, then made five times overconfident
    overconfident = logits * 5
    temperature = fit_temperature(overconfident, gold)
    before = torch.nn.functional.cross_entropy(overconfident, gold)
    after = torch.nn.functional.cross_entropy(overconfident / temperature, gold)
    assert 2 < temperature < 8 and after < before  # the fit undoes most of the x5
    assert expected_calibration_error((overconfident / temperature).softmax(-1), gold) < \
        expected_calibration_error(overconfident.softmax(-1), gold)


def test_fit_temperatures_on_a_tiny_model_and_save_load(make_tagger, tmp_path):
    model = make_tagger(LAYERS)
    dev = [Sentence(["john", "smith", "was", "in", "berlin"], ["B-PER", "I-PER", "O", "O", "B-LOC"]),
           Sentence(["the", "european", "union", "said"], ["O", "B-ORG", "I-ORG", "O"])] * 5
    fit = fit_temperatures(model, dev)
    assert len(fit.temperatures) == LAYERS and all(t > 0 for t in fit.temperatures)
    assert all(after <= before + 1e-6 for before, after in zip(fit.nll_before, fit.nll_after))
    model.exit_temperatures = fit.temperatures
    try:
        folder = save_model(model, tmp_path / "model")
    finally:
        model.exit_temperatures = None
    assert load_model(folder).exit_temperatures == pytest.approx(fit.temperatures)
    (folder / TEMPERATURES_FILE).write_text(json.dumps({"temperatures": [1.0, -2.0]}))
    with pytest.raises(ValueError, match="expected 4 positive temperatures"):
        load_model(folder)


@pytest.mark.parametrize("args, message", [
    (["--criterion", "bogus"], "--criterion must be one of entropy, confidence, patience, rising, vote, learned, signals"),
    (["--criterion", "patience", "--patience", "0"], "--criterion patience needs --patience >= 1"),
    (["--criterion", "patience"], "--criterion patience needs --patience >= 1"),
    (["--patience", "2"], "--patience is for the criteria patience and rising"),
])
def test_bad_criterion_options_are_usage_errors(make_tagger, tmp_path, args, message):
    from cli.main import app

    folder = save_model(make_tagger(LAYERS), tmp_path / "model")
    (tmp_path / "in.txt").write_text("john smith was in berlin .\n")
    for command in (["tag", str(tmp_path / "in.txt"), "-m", str(folder)], ["evaluate", str(folder), str(tmp_path / "in.txt")]):
        result = CliRunner().invoke(app, [*command, "--mode", "tokee", *args])
        assert result.exit_code == 2 and message in result.output, (command, result.output)


def test_learned_exit_heads_train_save_load_and_halt(make_tagger, sentences, tmp_path):

    from seqexit.training.learned_exits import train_learned_exits

    model = make_tagger(LAYERS)
    with pytest.raises(ValueError, match="needs its trained heads: run `seqexit learn-exits"):
        run_policy(model, sentences, ExitPolicy.tokee(0.5, criterion="learned"))
    result = train_learned_exits(model, sentences * 8, epochs=6, learning_rate=1e-2, batch_size=4)
    assert result.epoch_losses[-1] < result.epoch_losses[0], "the heads learn"
    assert len(result.agreement) == LAYERS - 1 and all(0 <= a <= 1 for a in result.agreement)
    model.learned_exits = result.heads
    try:
        never = run_policy(model, sentences, ExitPolicy.tokee(1.0, window=1, criterion="learned"), batch_size=2)
        assert exits_of(never) == exits_of(run_policy(model, sentences, ExitPolicy(), batch_size=2))
        eager = run_policy(model, sentences, ExitPolicy.tokee(0.0, window=0, criterion="learned"), batch_size=2)
        assert int(torch.cat([r.exit_layer for r in eager.sentences]).max()) == 1, "probability > 0 always: all halt at 1"
        folder = save_model(model, tmp_path / "model")
    finally:
        model.learned_exits = None
    assert (folder / LEARNED_EXITS_FILE).is_file()
    loaded = load_model(folder)
    assert all(torch.equal(a, b) for a, b in zip(loaded.learned_exits.state_dict().values(), result.heads.state_dict().values()))
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as weights:
        assert not [k for k in weights.keys() if k.startswith("learned_exits.")], "the heads have their own file"
    policy = ExitPolicy.tokee(0.6, window=1, criterion="learned")
    assert exits_of(run_policy(loaded, sentences, policy)) == exits_of(run_policy(loaded, sentences, policy))


def test_learn_exits_command(make_tagger, tmp_path):
    from cli.main import app

    folder = save_model(make_tagger(LAYERS), tmp_path / "model")
    (tmp_path / "text.txt").write_text("john smith was in berlin .\nthe european union said it was new .\n")
    result = CliRunner().invoke(app, ["learn-exits", str(folder), str(tmp_path / "text.txt"), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "heads written to" in result.output and load_model(folder).learned_exits is not None
    tagged = CliRunner().invoke(app, ["tag", str(tmp_path / "text.txt"), "-m", str(folder), "--mode", "tokee",
                                      "--criterion", "learned", "--threshold", "0.5", "-f", "jsonl"])
    assert tagged.exit_code == 0, tagged.output
    assert [len(json.loads(line)["labels"]) for line in tagged.stdout.splitlines()] == [6, 8]
