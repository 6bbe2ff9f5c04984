"""The cascade: a first-stage model tags every sentence, the unsure ones go on to the model.
Routing, labels, exit layers and FLOPs against each model run alone; the pairing file; the
policy's settings; calibration; the CLI and the spaCy component."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import spacy
import torch
from typer.testing import CliRunner

from cli.main import app
from seqexit import Tagger
from seqexit.bundle import ModelBundle, save_model
from seqexit.data import decode_spans
from seqexit.cascade import (CASCADE_FILE, attach_first_stage, first_stage_reused, pair_first_stage, read_first_stage,
                             run_first_stage)
from seqexit.evaluation.calibrate import CASCADE_THRESHOLDS, calibrate, full_depth_references
from seqexit.exits import ExitPolicy, normalised_entropy, run_exits, run_policy
from seqexit.exits.policy import PolicyError
from seqexit.model import MultiExitTagger

from tests.conftest import EXIT_LABELS, EXIT_SENTENCES, make_backbone

runner = CliRunner()
LONG = [w for s in EXIT_SENTENCES for w in s] * 5  # ~160 words: several windows of a 64-piece encoder
SENTENCES = [list(s) for s in EXIT_SENTENCES] + [[], LONG, ["paris", "london"]]


def spread(model: MultiExitTagger) -> MultiExitTagger:
    """Random exits are near-uniform; spread their confidence so that doubts differ by sentence."""
    with torch.no_grad():
        for head in model.exits:
            head.linear.weight.mul_(8.0)
    return model.eval()


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> MultiExitTagger:
    """A 2-layer first stage whose labels are in another order than the second stage's."""
    folder = make_backbone(tmp_path_factory.mktemp("small-bert"), layers=2, seed=11)
    torch.manual_seed(11)
    return spread(MultiExitTagger.from_backbone(folder, list(reversed(EXIT_LABELS))))


@pytest.fixture(scope="module")
def large(make_tagger) -> MultiExitTagger:
    return make_tagger(4)


@pytest.fixture()
def paired(large, small) -> MultiExitTagger:
    attach_first_stage(large, small)
    yield large
    large.__dict__.pop("first_stage", None)


def doubts(small: MultiExitTagger, sentences) -> list[float]:
    """Each sentence's largest normalised entropy at the first stage's last exit, computed apart."""
    outputs = run_exits(small, sentences, keep_logits=True)
    return [float(normalised_entropy(out.logits[-1]).max()) if len(words) else 0.0 for out, words in zip(outputs, sentences)]


def names(model, run) -> list[list[str]]:
    return [r.labels(model) for r in run.sentences]


def test_routing_labels_exit_layers_and_flops(paired, large, small):
    by_sentence = doubts(small, SENTENCES)
    threshold = sorted(d for d, s in zip(by_sentence, SENTENCES) if s)[3]  # some sentences each way
    sent_on = [i for i, (d, s) in enumerate(zip(by_sentence, SENTENCES)) if s and d >= threshold]
    assert 0 < len(sent_on) < sum(1 for s in SENTENCES if s)
    run = run_policy(paired, SENTENCES, ExitPolicy.cascade(threshold))
    alone_large = run_policy(large, SENTENCES, ExitPolicy())
    alone_small = run_policy(small, SENTENCES, ExitPolicy())
    for i, words in enumerate(SENTENCES):
        result = run.sentences[i]
        assert len(result.label_ids) == len(words), "exactly one label per word"
        if i in sent_on:
            assert result.labels(large) == alone_large.sentences[i].labels(large)
            assert result.exit_layer.tolist() == [large.num_layers] * len(words)
        else:  # the first stage's labels, by name, though its label ids are in another order
            assert result.labels(large) == alone_small.sentences[i].labels(small)
            assert result.exit_layer.tolist() == [0] * len(words)
    assert run.first_stage_words == sum(len(SENTENCES[i]) for i in range(len(SENTENCES)) if i not in sent_on)
    assert run.words == sum(map(len, SENTENCES))
    # FLOPs: the first stage's full forward on every sentence, the model's on those sent on
    assert run.flops.full == alone_large.flops.full
    assert run.flops.spent == alone_small.flops.full + sum(alone_large.sentences[i].flops_full for i in sent_on)
    assert [r.flops_full for r in run.sentences] == [r.flops_full for r in alone_large.sentences]


def test_threshold_zero_is_the_model_and_above_one_the_first_stage(paired, large, small):
    everything = run_policy(paired, SENTENCES, ExitPolicy.cascade(0.0))
    assert names(large, everything) == names(large, run_policy(large, SENTENCES, ExitPolicy()))
    nothing = run_policy(paired, SENTENCES, ExitPolicy.cascade(1.5))
    assert names(large, nothing) == names(small, run_policy(small, SENTENCES, ExitPolicy()))
    assert nothing.flops.speedup > 1.0 > everything.flops.speedup  # the first stage costs on top


def test_then_runs_the_second_stage_under_its_own_policy(paired, large):
    then = ExitPolicy.tokee(0.3, window=1)
    run = run_policy(paired, SENTENCES, ExitPolicy.cascade(0.0, then=then))
    alone = run_policy(large, SENTENCES, then)
    assert names(large, run) == names(large, alone)
    assert [r.exit_layer.tolist() for r in run.sentences] == [r.exit_layer.tolist() for r in alone.sentences]


def test_a_model_without_first_stage_and_unlike_labels_are_refused(large, small, tiny_backbone):
    with pytest.raises(ValueError, match="seqexit cascade"):
        run_policy(large, SENTENCES, ExitPolicy.cascade(0.1))
    other = MultiExitTagger.from_backbone(tiny_backbone, ["O", "B-MISC", "I-MISC"])
    with pytest.raises(ValueError, match="labels differ"):
        attach_first_stage(large, other)
    assert "first_stage" not in large.state_dict() and not any("first_stage" in k for k in large.state_dict())


def test_policy_settings():
    then = ExitPolicy.tokee(0.2, window=1)
    policy = ExitPolicy.cascade(0.05, then=then)
    assert ExitPolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy
    assert str(policy) == "cascade threshold 0.05, then tokee threshold 0.2 window 1"
    assert ExitPolicy(mode="cascade", threshold=0.1, window=2) == ExitPolicy.cascade(0.1), "the window is not used"
    with pytest.raises(PolicyError, match="then"):
        ExitPolicy.tokee(0.1, window=1).__class__(mode="tokee", threshold=0.1, then=then)
    with pytest.raises(PolicyError, match="cannot be a cascade"):
        ExitPolicy.cascade(0.1, then=ExitPolicy.cascade(0.2))
    with pytest.raises(PolicyError, match="entropy"):
        ExitPolicy(mode="cascade", threshold=0.9, criterion="confidence")
    with pytest.raises(PolicyError, match="one"):
        ExitPolicy(mode="cascade", threshold=(0.1, 0.2))
    with pytest.raises(ValueError, match="then"):
        ExitPolicy.from_dict({"mode": "cascade", "threshold": 0.1, "then": "full"})


def test_pairing_file(large, small, tmp_path):
    first = save_model(small, tmp_path / "small")
    second = save_model(large, tmp_path / "models" / "large")
    assert read_first_stage(second) is None
    path = pair_first_stage(second, first)
    assert json.loads(path.read_text()) == {"first_stage": "../../small"}, "kept relative: the two move together"
    assert read_first_stage(second).resolve() == first.resolve()
    opened = ModelBundle(str(second)).open(runtime="torch")  # a str path is a path too
    run = run_policy(opened.runner, SENTENCES, ExitPolicy.cascade(1.5))
    assert names(large, run) == names(small, run_policy(small, SENTENCES, ExitPolicy()))
    with pytest.raises(ValueError, match="its own first stage"):
        pair_first_stage(second, second)
    shutil.rmtree(first)
    with pytest.raises(ValueError, match=f"{CASCADE_FILE}.*cannot be found"):
        read_first_stage(second)
    path.write_text("{not json")
    with pytest.raises(ValueError, match=f"{CASCADE_FILE}: unreadable"):
        read_first_stage(second)


def test_calibration_measures_cascades_with_one_first_stage_run(paired, small, monkeypatch):
    import seqexit.cascade as cascade

    words = [s for s in SENTENCES if s]
    references = full_depth_references(paired, words)
    calls = []
    real = cascade.run_first_stage
    monkeypatch.setattr(cascade, "run_first_stage", lambda *a, **k: calls.append(1) or real(*a, **k))
    result = calibrate(paired, references, max_drop=0.0, runtime="torch")
    cascades = [r for r in result.rows if r.policy.mode == "cascade"]
    assert {r.policy.threshold for r in cascades} == set(CASCADE_THRESHOLDS)
    assert len(calls) == 1, "one first-stage run serves every routing threshold"
    by_threshold = {r.policy.threshold: r for r in cascades if r.policy.then is None}
    direct = run_policy(paired, words, ExitPolicy.cascade(CASCADE_THRESHOLDS[2]))
    assert by_threshold[CASCADE_THRESHOLDS[2]].flops_speedup == direct.flops.speedup
    assert result.presets["accurate"].score >= 100.0 - 0.1 - 1e-9


def test_first_stage_reused_only_for_the_same_sentences(paired, small, monkeypatch):
    import seqexit.cascade as cascade

    words = [s for s in SENTENCES if s]
    calls = []
    real = cascade.run_first_stage
    monkeypatch.setattr(cascade, "run_first_stage", lambda *a, **k: calls.append(1) or real(*a, **k))
    with first_stage_reused(paired, words):
        run_policy(paired, words, ExitPolicy.cascade(0.1))
        run_policy(paired, words[:2], ExitPolicy.cascade(0.1))
    run_policy(paired, words, ExitPolicy.cascade(0.1))
    assert len(calls) == 3, "the block's run, then a fresh run for other sentences and after the block"
    assert run_first_stage(small, [[]]).doubt.tolist() == [0.0]


@pytest.fixture()
def cascade_folders(large, small, tmp_path):
    first = save_model(small, tmp_path / "small")
    second = save_model(large, tmp_path / "large")
    return first, second


def test_cli_pairs_tags_and_refuses(cascade_folders, tmp_path, small):
    first, second = cascade_folders
    text = tmp_path / "in.txt"
    text.write_text("john smith was in berlin .\nparis\n")
    result = runner.invoke(app, ["tag", str(text), "-m", str(second), "--mode", "cascade", "--threshold", "0.1"])
    assert result.exit_code == 2 and "seqexit cascade" in result.output
    result = runner.invoke(app, ["cascade", str(second), "--first", str(first)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["info", str(second)])
    assert "first stage" in result.output
    result = runner.invoke(app, ["tag", str(text), "-m", str(second), "--mode", "cascade", "--threshold", "1.5",
                                 "-f", "jsonl", "--runtime", "torch"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    expected = Tagger(small).tag([["john", "smith", "was", "in", "berlin", "."], ["paris"]])
    spans = [decode_spans(r["labels"], "iob2") for r in rows]  # the writer repairs I- after O into B-
    assert spans == [decode_spans(t.labels, "iob2") for t in expected]
    assert all(layer == 0 for r in rows for layer in r["exit_layers"])
    gold = tmp_path / "gold.conll"
    gold.write_text("john B-PER\nsmith I-PER\nwas O\n\nparis B-LOC\n")
    result = runner.invoke(app, ["evaluate", str(second), str(gold), "--mode", "cascade", "--threshold", "1.5", "--json",
                                 "--runtime", "torch"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["first_stage_words"] == 4 and record["exit_layer_histogram"] == [0, 0, 0, 0]
    assert record["mean_exit_layer"] == 0 and record["flops_speedup"] > 1
    result = runner.invoke(app, ["tag", str(text), "-m", str(second), "--mode", "tokee", "--then", "x"])
    assert result.exit_code == 2 and "--then" in result.output
    result = runner.invoke(app, ["cascade", str(second), "--first", str(second)])
    assert result.exit_code == 2 and "own first stage" in result.output
    result = runner.invoke(app, ["cascade", str(second), "--remove"])
    assert result.exit_code == 0 and not (second / CASCADE_FILE).exists()


def test_spacy_component_runs_and_serializes_a_cascade(cascade_folders, tmp_path, large):
    first, second = cascade_folders
    pair_first_stage(second, first)
    nlp = spacy.blank("en")
    nlp.add_pipe("seqexit_ner", config={"model": str(second), "policy": ExitPolicy.cascade(0.2).to_dict()})
    texts = [" ".join(s) for s in SENTENCES if s]
    before = [[(t.ent_iob_, t.ent_type_, t._.exit_layer) for t in doc] for doc in nlp.pipe(texts)]
    paired = attach_first_stage(large, ModelBundle(first).load())
    expected = run_policy(paired, [t.split() for t in texts], ExitPolicy.cascade(0.2))
    large.__dict__.pop("first_stage")
    assert [[layer for *_, layer in doc] for doc in before] == [r.exit_layer.tolist() for r in expected.sentences]
    nlp.to_disk(tmp_path / "pipeline")
    shutil.rmtree(first)  # the saved pipeline holds its own copy of the first stage
    loaded = spacy.load(tmp_path / "pipeline")
    assert [[(t.ent_iob_, t.ent_type_, t._.exit_layer) for t in doc] for doc in loaded.pipe(texts)] == before
    pipe = loaded.get_pipe("seqexit_ner")
    again = spacy.blank("en").add_pipe("seqexit_ner", config={"model": "", "policy": ExitPolicy.cascade(0.2).to_dict()})
    again.from_bytes(pipe.to_bytes())
    nlp2 = spacy.blank("en")
    docs = [again(nlp2.make_doc(t)) for t in texts]
    assert [[(t.ent_iob_, t.ent_type_, t._.exit_layer) for t in doc] for doc in docs] == before
