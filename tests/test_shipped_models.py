"""The shipped default models: found by name, every preset tags, and their scores on a fixed
slice of the test sets stay at the recorded figures (skipped where ../shared/data is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from seqexit.bundle import find_model, load_presets, shipped_models
from seqexit import Tagger
from seqexit.data.formats import read_file
from seqexit.evaluation import evaluate_policy
from seqexit.exits import ExitPolicy

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # the real MiniLM-based models in data/models

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
TEST_FILES = {"en-ner": DATA / "conll2003" / "eng.testb", "en-pos": DATA / "ud_en_ewt" / "en_ewt-ud-test.conllu"}
TOLERANCE = 0.3  # points: room for float differences between CPUs and library versions, no more
# int8 on the 300-sentence slice: rounding flips a few of its ~700 entities, so its F1 moved by up
# to 0.93 here (fast) while on the whole test set int8 moved full depth by +0.02 and fast by -0.11
INT8_SLICE_TOLERANCE = 1.5
SENTENCES = [["Angela", "Merkel", "met", "Emmanuel", "Macron", "in", "Paris", "."],
             ["Apple", "opened", "a", "store", "in", "Munich", "on", "Tuesday", "."], ["Hi"]]


@pytest.fixture(scope="module", params=["en-ner", "en-pos"])
def shipped(request):
    name = request.param
    return name, Tagger.load(name)


def test_both_models_are_shipped_and_resolve_by_name():
    assert {"en-ner", "en-pos"} <= set(shipped_models())
    for name in ("en-ner", "en-pos"):
        folder = find_model(name)
        assert folder.name == name and (folder / "record.json").is_file() and (folder / "MODEL.md").is_file()
        assert sum(p.stat().st_size for p in folder.iterdir()) < 12e6, "a shipped model stays under 12 MB"
        assert {"accurate", "balanced", "fast"} <= set(load_presets(folder))


def test_every_preset_tags_every_word(shipped):
    """Every preset, those of the other exit criteria included (their temperatures and learned
    heads ship in the folder)."""
    name, tagger = shipped
    for preset in [None, *load_presets(find_model(name)).values()]:
        policy = preset.policy if preset else ExitPolicy()
        for words, tagged in zip(SENTENCES, tagger.tag(SENTENCES, policy=policy)):
            assert tagged.words == words and len(tagged.labels) == len(words)
            assert set(tagged.labels) <= set(tagger.labels)
            assert all(1 <= layer <= tagger.model.num_layers for layer in tagged.exit_layers)


def test_en_ner_finds_the_obvious_entities():
    [merkel, apple, _] = Tagger.load("en-ner").tag(SENTENCES)
    assert {(s.label, " ".join(merkel.words[s.start:s.end])) for s in merkel.spans} == {
        ("PER", "Angela Merkel"), ("PER", "Emmanuel Macron"), ("LOC", "Paris")}
    assert {(s.label, " ".join(apple.words[s.start:s.end])) for s in apple.spans} == {("ORG", "Apple"), ("LOC", "Munich")}


def test_en_pos_tags_a_plain_sentence():
    [merkel, *_] = Tagger.load("en-pos").tag(SENTENCES)
    assert merkel.labels == ["PROPN", "PROPN", "VERB", "PROPN", "PROPN", "ADP", "PROPN", "PUNCT"]


@pytest.mark.skipif(not DATA.exists(), reason=f"{DATA} not found: the benchmark corpora live beside the repo")
def test_scores_on_the_fixed_test_slice_match_the_record(shipped):
    name, tagger = shipped
    record = json.loads((find_model(name) / "record.json").read_text())["test_slice"]
    test = read_file(TEST_FILES[name], span_tags=tagger.model.config.scheme is not None)[: record["sentences"]]
    presets = load_presets(find_model(name))
    policies = {"full depth": ExitPolicy(), **{n: presets[n].policy for n in record["scores"] if n != "full depth"}}
    assert {"accurate", "balanced", "fast"} <= set(policies) == set(record["scores"])
    for preset, policy in policies.items():
        score = evaluate_policy(tagger.model, test, policy).score
        assert score >= record["scores"][preset] - TOLERANCE, (name, preset, score)


def test_the_cli_tags_the_sample_news_with_en_ner_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # names resolve from any directory
    result = CliRunner().invoke(app, ["tag", str(REPO / "data" / "samples" / "news.txt"), "--model", "en-ner", "-f", "pretty"])
    assert result.exit_code == 0, result.output
    assert "PER  Angela Merkel" in result.stdout and "ORG  Reuters" in result.stdout


def test_the_spacy_components_find_the_shipped_models_by_default():
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("seqexit_ner")
    nlp.add_pipe("seqexit_tagger")
    doc = nlp("Angela Merkel met Emmanuel Macron in Paris.")
    assert ("Angela Merkel", "PER") in [(e.text, e.label_) for e in doc.ents]
    assert [t.tag_ for t in doc][:2] == ["PROPN", "PROPN"]


@pytest.mark.skipif(not DATA.exists(), reason=f"{DATA} not found: the benchmark corpora live beside the repo")
@pytest.mark.parametrize("name", ["en-ner", "en-pos"])
def test_int8_presets_of_the_shipped_models_tag_close_to_float(name):
    """The int8 path on the models as shipped, offline: every int8 preset exists and scores on
    the fixed slice within INT8_SLICE_TOLERANCE of the float preset of the same name, plus
    whatever that int8 preset was calibrated to give up on dev against its float counterpart."""
    folder = find_model(name)
    floats, int8 = load_presets(folder), load_presets(folder, quantize="int8")
    assert set(int8) == {"accurate", "balanced", "fast"} <= set(floats)
    record = json.loads((folder / "record.json").read_text())["test_slice"]
    quantized = Tagger.load(name, quantize="int8")
    test = read_file(TEST_FILES[name], span_tags=quantized.model.config.scheme is not None)[: record["sentences"]]
    full = evaluate_policy(quantized.model, test, ExitPolicy()).score
    assert full >= record["scores"]["full depth"] - INT8_SLICE_TOLERANCE, (name, "int8 full depth", full)
    for preset, p in int8.items():
        assert p.quantize == "int8" and p.full_score == pytest.approx(floats[preset].full_score)
        score = evaluate_policy(quantized.model, test, p.policy).score
        allowance = max(0.0, floats[preset].score - p.score)  # what calibration on dev accepted
        assert score >= record["scores"][preset] - allowance - INT8_SLICE_TOLERANCE, (name, preset, score)


@pytest.mark.parametrize("levels", [63.0, 127.0], ids=["x86-without-vnni", "vnni"])
def test_the_onnx_int8_layers_of_en_ner_pass_their_load_check_at_either_weight_precision(levels, monkeypatch):
    """x86 without VNNI quantises weights to 63 levels (`weight_levels`); there a correct int8
    layer of en-ner missed the load check's old bound (largest error 10% of the output's range:
    0.54 against 0.37 on an AVX2 AMD EPYC), so `--runtime onnx --quantize int8` stopped and
    `auto` fell back to torch. Built here at both precisions, on any CPU."""
    pytest.importorskip("onnxruntime")
    from seqexit.runtime import apply_runtime, onnx_graph

    monkeypatch.setattr(onnx_graph, "weight_levels", lambda: levels)
    model = Tagger.load("en-ner", runtime="torch").model
    onnx = apply_runtime(model, "onnx", quantize="int8")  # raises RuntimeMismatch where the check refuses
    assert onnx.runtime == "onnx" and onnx.quantized == "int8"
    [tagged] = Tagger(onnx).tag(SENTENCES[:1])
    assert tagged.labels == Tagger(model).tag(SENTENCES[:1])[0].labels
