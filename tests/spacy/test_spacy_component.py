"""The spaCy components `seqexit_ner` and `seqexit_tagger`: labels equal to `Tagger`'s, spaCy's
tokens (whitespace included), long docs, extensions, serialization, multiprocessing, scoring."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from spacy.util import filter_spans

from seqexit.bundle import load_model, save_presets
from seqexit import ExitPolicy, Tagger
from seqexit.exits import Preset, run_policy
from seqexit.model import MultiExitTagger
from seqexit.spacy_docs import UPOS_TAGS, entity_spans

LAYERS = 4
EXIT_SENTENCES = [
    ["john", "smith", "was", "in", "berlin", "on", "monday", "."],
    ["reuters"],
    ["the", "european", "union", "and", "the", "united", "nations", "said", "it", "was", "new"],
    ["mary", "xqzw", "paris"],
    ["germany", ",", "france", "and", "london", "-", "based", "company", "abcdef"],
]
POLICIES = [ExitPolicy(), ExitPolicy.static(2), ExitPolicy.tokee(0.5, window=1), ExitPolicy.sentee(0.6)]
LONG_WORDS = (" ".join(w for s in EXIT_SENTENCES for w in s) + " ") * 6  # ~200 words, far over 64 pieces


def policy_config(policy: ExitPolicy) -> dict:
    return {"policy": policy.to_dict()}


def ner_pipe(model: Path | str, **config):
    nlp = spacy.blank("en")
    nlp.add_pipe("seqexit_ner", config={"model": str(model), **config})
    return nlp


def word_docs(nlp, sentences) -> list[Doc]:
    return [Doc(nlp.vocab, words=list(words)) for words in sentences]


def ents(doc: Doc) -> list[tuple[int, int, str]]:
    return [(e.start, e.end, e.label_) for e in doc.ents]


def annotations(doc: Doc) -> tuple:
    """Everything the components write, for before/after comparisons."""
    tokens = [(t.text, t.ent_iob_, t.ent_type_, t.tag_, t.pos_, t._.exit_layer, t._.exit_confidence) for t in doc]
    chunks = [(s.start, s.end, s.label_) for s in doc.spans.get("chunks", [])]
    return tokens, ents(doc), chunks, doc._.seqexit_flops


def without_confidence(annotated: tuple) -> tuple:
    """`annotations` less the confidences, which differ in the last float bits between a doc
    tagged alone and one tagged in a padded batch."""
    tokens, *rest = annotated
    return [token[:-1] for token in tokens], *rest


@pytest.mark.parametrize("policy", POLICIES, ids=str)
def test_ner_labels_equal_the_taggers(spacy_ner_model, policy):
    nlp = ner_pipe(spacy_ner_model, batch_size=2, **policy_config(policy))
    docs = list(nlp.pipe(word_docs(nlp, EXIT_SENTENCES)))
    tagger = Tagger(load_model(spacy_ner_model), policy=policy, batch_size=2)
    for doc, expected in zip(docs, tagger.tag(EXIT_SENTENCES)):
        assert ents(doc) == [(s.start, s.end, s.label) for s in expected.spans]
        assert [t._.exit_layer for t in doc] == expected.exit_layers
        assert [t._.exit_confidence for t in doc] == pytest.approx(expected.confidence, abs=1e-6)
        for ent in doc.ents:
            assert ent._.confidence == pytest.approx(sum(expected.confidence[ent.start : ent.end]) / len(ent), abs=1e-6)


@pytest.mark.parametrize("policy", POLICIES, ids=str)
def test_extensions_and_flops_per_doc(spacy_ner_model, policy):
    nlp = ner_pipe(spacy_ner_model, batch_size=3, **policy_config(policy))
    docs = list(nlp.pipe(word_docs(nlp, EXIT_SENTENCES)))
    for doc in docs:
        assert all(1 <= t._.exit_layer <= LAYERS and 0.0 < t._.exit_confidence <= 1.0 for t in doc)
        spent, full = doc._.seqexit_flops
        assert 0 < spent <= full
    run = run_policy(load_model(spacy_ner_model), EXIT_SENTENCES, policy, batch_size=3)
    assert sum(d._.seqexit_flops[0] for d in docs) == run.flops.spent  # the docs' shares add up to the engine's count
    assert sum(d._.seqexit_flops[1] for d in docs) == run.flops.full
    if policy.mode == "full":
        assert all(spent == full for spent, full in (d._.seqexit_flops for d in docs))


def test_raw_text_whitespace_tokens_and_spans(spacy_ner_model):
    nlp = ner_pipe(spacy_ner_model)
    doc = nlp("John Smith was in Berlin.\n\nMary  met the European Union in  Paris \t on Monday. ")
    spaces = [t for t in doc if t.is_space]
    assert len(spaces) >= 3
    assert all(t._.exit_layer == 0 and t._.exit_confidence == 1.0 for t in spaces)
    words = [t.text for t in doc if not t.is_space]
    [expected] = Tagger.load(spacy_ner_model).tag([words])
    assert [t._.exit_layer for t in doc if not t.is_space] == expected.exit_layers
    position = [t.i for t in doc if not t.is_space]  # word index -> token index
    assert ents(doc) == [(position[s.start], position[s.end - 1] + 1, s.label) for s in expected.spans]
    assert not any(e[0].is_space or e[-1].is_space for e in doc.ents)


def test_entity_spans_with_spacy_helpers():
    nlp = spacy.blank("en")
    doc = Doc(nlp.vocab, words=["New", "\n", "York", "  ", "and", "John", "\n", "Smith", "x"], spaces=[True] * 8 + [False])
    labels = ["B-LOC", "O", "I-LOC", "O", "O", "I-PER", "", "B-PER", "I-ORG"]  # blank tokens' labels are ignored
    spans = [(s.start, s.end, s.label_) for s in entity_spans(doc, labels)]
    assert spans == [(0, 3, "LOC"), (5, 6, "PER"), (7, 8, "PER"), (8, 9, "ORG")]  # I- after O or another type starts a span
    assert [(s.start, s.end, s.label_) for s in entity_spans(doc, ["S-LOC", "", "B-PER", "", "O", "B-PER", "", "E-PER", "O"], "iobes")] == [
        (0, 1, "LOC"), (2, 3, "PER"), (5, 8, "PER")]


@pytest.mark.parametrize("text", ["", " ", "\n\n", " \t \n "])
def test_empty_and_whitespace_only_docs(spacy_ner_model, spacy_pos_model, text):
    nlp = ner_pipe(spacy_ner_model)
    nlp.add_pipe("seqexit_tagger", config={"model": str(spacy_pos_model)})
    for doc in [nlp(text), *nlp.pipe([text, "john smith", text])]:
        assert all(t._.exit_layer == 0 for t in doc if t.is_space)
        if not doc.text.strip():
            assert doc.ents == () and doc._.seqexit_flops == (0, 0)
            assert all(t.tag_ == "" and t.pos_ == "" for t in doc)


def test_long_doc_is_windowed_not_truncated(spacy_ner_model, spacy_pos_model):
    nlp = ner_pipe(spacy_ner_model)
    nlp.add_pipe("seqexit_tagger", config={"model": str(spacy_pos_model)})
    doc = nlp(LONG_WORDS)
    model = load_model(spacy_ner_model)
    words = [t.text for t in doc if not t.is_space]
    assert len(model.pieces.encode([words])[0]) > 1  # really longer than the encoder's 64 positions
    assert all(1 <= t._.exit_layer <= LAYERS and t.tag_ for t in doc if not t.is_space)
    [expected] = Tagger(model).tag([words])
    assert ents(doc) == [(s.start, s.end, s.label) for s in expected.spans]
    [tags] = Tagger.load(spacy_pos_model).tag([words])
    assert [t.tag_ for t in doc] == tags.labels


def test_pos_only_for_universal_tags(spacy_pos_model):
    nlp = spacy.blank("en")
    nlp.add_pipe("seqexit_tagger", config={"model": str(spacy_pos_model), "batch_size": 2})
    docs = list(nlp.pipe(word_docs(nlp, EXIT_SENTENCES)))
    expected = Tagger.load(spacy_pos_model, batch_size=2).tag(EXIT_SENTENCES)
    seen = set()
    for doc, tagged in zip(docs, expected):
        assert [t.tag_ for t in doc] == tagged.labels
        for token in doc:
            assert token.pos_ == (token.tag_ if token.tag_ in UPOS_TAGS else "")
            seen.add(token.tag_ in UPOS_TAGS)
    assert seen == {True, False}  # the tiny model says both kinds, so both branches ran
    assert "NN" not in UPOS_TAGS and "PROPN" in UPOS_TAGS


def test_chunk_model_writes_doc_spans(spacy_chunk_model):
    nlp = ner_pipe(spacy_chunk_model, scorer={"@scorers": "seqexit.chunk_scorer.v1"})
    docs = list(nlp.pipe(word_docs(nlp, EXIT_SENTENCES)))
    for doc, tagged in zip(docs, Tagger.load(spacy_chunk_model).tag(EXIT_SENTENCES)):
        assert doc.ents == ()
        assert [(s.start, s.end, s.label_) for s in doc.spans["chunks"]] == [(s.start, s.end, s.label) for s in tagged.spans]
    examples = [Example(nlp.make_doc(d.text), d) for d in docs]
    scores = nlp.evaluate(examples)
    assert scores["chunks_f"] == 1.0  # gold = the model's own chunks


def test_task_must_fit_the_factory(spacy_ner_model, spacy_pos_model):
    with pytest.raises(ValueError, match="is a 'pos' model.*use seqexit_tagger"):
        ner_pipe(spacy_pos_model)
    with pytest.raises(ValueError, match="is a 'ner' model.*use seqexit_ner"):
        spacy.blank("en").add_pipe("seqexit_tagger", config={"model": str(spacy_ner_model)})


def test_bad_settings_are_refused_early(spacy_ner_model, tmp_path):
    with pytest.raises(ValueError, match="mode must be one of"):
        ner_pipe(spacy_ner_model, policy={"mode": "fastest"})
    with pytest.raises(ValueError, match="static_layer"):
        ner_pipe(spacy_ner_model, policy={"mode": "static"})
    with pytest.raises(ValueError, match="threshold 1.5 is out of range for criterion confidence: it is a probability"):
        ner_pipe(spacy_ner_model, policy={"mode": "tokee", "criterion": "confidence", "threshold": 1.5})
    with pytest.raises(ValueError, match="not a torch device"):
        ner_pipe(spacy_ner_model, device="tpu:x")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        ner_pipe(spacy_ner_model, batch_size=0)
    with pytest.raises(ValueError, match="unknown preset 'fast'.*no presets.json"):
        ner_pipe(spacy_ner_model, preset="fast")
    nlp = ner_pipe(tmp_path / "gone")  # spacy.load builds components before from_disk: not an error yet
    with pytest.raises(ValueError, match="has no model: no model folder or shipped model named"):
        nlp("john smith")


def test_preset_from_the_model_folder(spacy_ner_model, model_copy, tmp_path):
    folder = model_copy(spacy_ner_model)
    fast = ExitPolicy.tokee(0.6, window=1)
    save_presets(folder, [Preset("fast", fast, "f1", 80.0, 81.0, 2.0, 2.5)])
    nlp = ner_pipe(folder, preset="fast", policy={"mode": "full"})  # the preset wins over the policy block
    component = nlp.get_pipe("seqexit_ner")
    assert component.policy == fast and set(component.presets) == {"fast"}
    docs = list(nlp.pipe(word_docs(nlp, EXIT_SENTENCES)))
    expected = Tagger.load(folder, policy=fast).tag(EXIT_SENTENCES)
    assert [[t._.exit_layer for t in d] for d in docs] == [e.exit_layers for e in expected]
    with pytest.raises(ValueError, match="unknown preset 'slow'.*available: fast"):
        ner_pipe(folder, preset="slow")
    nlp.to_disk(tmp_path / "pipeline")
    assert (tmp_path / "pipeline" / "seqexit_ner" / "presets.json").is_file()
    shutil.rmtree(folder)
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.get_pipe("seqexit_ner").policy == fast
    assert [annotations(d) for d in loaded.pipe(word_docs(loaded, EXIT_SENTENCES))] == [annotations(d) for d in docs]
    switched = spacy.load(tmp_path / "pipeline", config={"components": {"seqexit_ner": {"preset": None}}})
    assert switched.get_pipe("seqexit_ner").policy == ExitPolicy()  # the config's policy block


TEXTS = ["John Smith was in Berlin on Monday.", "Reuters", "", "Mary  met\nthe United Nations in Paris. " * 3, LONG_WORDS]


def full_pipeline(ner: Path, pos: Path):
    nlp = ner_pipe(ner, policy={"mode": "tokee", "threshold": 0.5, "window": 1}, batch_size=4)
    nlp.add_pipe("seqexit_tagger", config={"model": str(pos)})
    return nlp


def test_disk_round_trip_without_the_model_folders(spacy_ner_model, spacy_pos_model, model_copy, tmp_path):
    ner, pos = model_copy(spacy_ner_model), model_copy(spacy_pos_model)
    nlp = full_pipeline(ner, pos)
    before = [annotations(d) for d in nlp.pipe(TEXTS)]
    nlp.to_disk(tmp_path / "pipeline")
    assert {p.name for p in (tmp_path / "pipeline" / "seqexit_ner").iterdir()} >= {"seqexit.json", "model.safetensors", "tokenizer.json"}
    shutil.rmtree(ner), shutil.rmtree(pos)
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.pipe_names == ["seqexit_ner", "seqexit_tagger"]
    assert [annotations(d) for d in loaded.pipe(TEXTS)] == before
    alone = [annotations(loaded(t)) for t in TEXTS]
    assert [without_confidence(a) for a in alone] == [without_confidence(b) for b in before]
    for a, b in zip(alone, before):
        assert [t[-1] for t in a[0]] == pytest.approx([t[-1] for t in b[0]], abs=1e-5)


def test_bytes_round_trip(spacy_ner_model, spacy_pos_model):
    nlp = full_pipeline(spacy_ner_model, spacy_pos_model)
    before = [annotations(d) for d in nlp.pipe(TEXTS)]
    data = nlp.to_bytes()
    fresh = spacy.blank("en")  # placeholders: model "" until from_bytes fills them
    fresh.add_pipe("seqexit_ner", config={"model": "", "policy": {"mode": "tokee", "threshold": 0.5, "window": 1}, "batch_size": 4})
    fresh.add_pipe("seqexit_tagger", config={"model": ""})
    assert fresh.get_pipe("seqexit_ner").labels == ()
    fresh.from_bytes(data)
    assert [annotations(d) for d in fresh.pipe(TEXTS)] == before
    component = nlp.get_pipe("seqexit_tagger")
    again = spacy.blank("en").add_pipe("seqexit_tagger", config={"model": ""}).from_bytes(component.to_bytes())
    assert again.labels == component.labels


def test_pickle_goes_through_safetensors_bytes(spacy_ner_model, spacy_pos_model):
    nlp = full_pipeline(spacy_ner_model, spacy_pos_model)
    before = [annotations(d) for d in nlp.pipe(TEXTS)]
    data = pickle.dumps(nlp)
    assert b"torch._utils" not in data and b"_rebuild_tensor" not in data
    assert [annotations(d) for d in pickle.loads(data).pipe(TEXTS)] == before


def test_n_process_2(spacy_ner_model, spacy_pos_model):
    nlp = full_pipeline(spacy_ner_model, spacy_pos_model)
    texts = TEXTS * 3
    before = [annotations(d) for d in nlp.pipe(texts, batch_size=2)]  # same batches as each worker's
    assert [annotations(d) for d in nlp.pipe(texts, n_process=2, batch_size=2)] == before


def run_python(code: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
@pytest.mark.integration
def test_n_process_2_under_spawn(spacy_ner_model, spacy_pos_model):
    """Under spawn spaCy pickles the pipeline into each worker."""
    done = run_python(f"""
        import multiprocessing, spacy
        if __name__ == "__main__":
            multiprocessing.set_start_method("spawn", force=True)
            nlp = spacy.blank("en")
            nlp.add_pipe("seqexit_ner", config={{"model": {str(spacy_ner_model)!r}}})
            nlp.add_pipe("seqexit_tagger", config={{"model": {str(spacy_pos_model)!r}}})
            texts = {TEXTS!r}
            key = lambda d: ([(t.ent_iob_, t.tag_, t._.exit_layer) for t in d], d._.seqexit_flops)
            assert [key(d) for d in nlp.pipe(texts, n_process=2, batch_size=2)] == [key(nlp(t)) for t in texts]
            print("ok")
    """)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.integration
def test_factories_found_through_entry_points(spacy_ner_model, spacy_pos_model):
    done = run_python(f"""
        import sys, spacy
        nlp = spacy.blank("en")
        assert "seqexit" not in sys.modules  # discovering the factories imports spaCy only
        nlp.add_pipe("seqexit_ner", config={{"model": {str(spacy_ner_model)!r}, "policy": {{"mode": "tokee", "threshold": 0.3}}}})
        nlp.add_pipe("seqexit_tagger", config={{"model": {str(spacy_pos_model)!r}}})
        doc = nlp("John Smith was in Berlin.")
        assert all(t._.exit_layer >= 1 and t.tag_ for t in doc)
        print(len(doc.ents), doc._.seqexit_flops[0] <= doc._.seqexit_flops[1])
    """)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "True"


def test_overwrite_and_filter_spans(spacy_ner_model):
    words = EXIT_SENTENCES[2]
    [tagged] = Tagger.load(spacy_ner_model).tag([words])
    predicted = [(s.start, s.end, s.label) for s in tagged.spans]
    assert predicted, "the tiny model should predict some entity here"
    nlp = ner_pipe(spacy_ner_model)
    start, end, _ = predicted[0]

    def with_existing(spans):
        doc = Doc(nlp.vocab, words=words)
        doc.ents = [Span(doc, s, e, label=label) for s, e, label in spans]
        return doc

    longer = (start, min(end + 2, len(words)), "MISC") if end + 2 <= len(words) else (max(start - 2, 0), end, "MISC")
    same = (start, end, "EXISTING")
    covered = {i for s, e, _ in predicted for i in range(s, e)}
    free = [i for i in range(len(words)) if i not in covered]
    for existing in ([longer], [same], [(free[0], free[0] + 1, "MISC")] if free else []):
        doc = nlp(with_existing(existing))
        spans = filter_spans([*(Span(doc, s, e, label=l) for s, e, l in existing), *(Span(doc, s, e, label=l) for s, e, l in predicted)])
        assert ents(doc) == sorted((s.start, s.end, s.label_) for s in spans)
        assert set(existing) <= set(ents(doc))  # longer, tying or disjoint: the existing entity stays
    overwrite = ner_pipe(spacy_ner_model, overwrite=True)
    assert ents(overwrite(with_existing([longer]))) == predicted


def test_error_handler_per_doc(spacy_ner_model):
    nlp = ner_pipe(spacy_ner_model)
    component = nlp.get_pipe("seqexit_ner")
    predict = component.predict

    def failing(docs):
        docs = list(docs)
        if any(t.text == "boom" for d in docs for t in d):
            raise RuntimeError("boom")
        return predict(docs)

    component.predict = failing
    texts = ["john smith", "it was boom", "paris", "mary"]
    with pytest.raises(RuntimeError, match="boom"):
        list(nlp.pipe(texts))
    seen = []
    nlp.set_error_handler(lambda name, proc, docs, err: seen.append((name, [d.text for d in docs], str(err))))
    assert [d.text for d in nlp.pipe(texts, batch_size=4)] == ["john smith", "paris", "mary"]
    assert seen == [("seqexit_ner", ["it was boom"], "boom")]
    assert all(t._.exit_layer for t in nlp("paris"))


def gold_docs(nlp, predicted: list[Doc]) -> list[Example]:
    return [Example(nlp.make_doc(d.text), d) for d in predicted]


def test_scoring_and_spacy_evaluate(spacy_ner_model, spacy_pos_model, tmp_path):
    nlp = full_pipeline(spacy_ner_model, spacy_pos_model)
    gold = list(nlp.pipe(TEXTS[:4]))
    scores = nlp.evaluate(gold_docs(nlp, gold))
    assert scores["ents_f"] == 1.0 and scores["tag_acc"] == 1.0  # gold = the pipeline's own output
    nlp.to_disk(tmp_path / "pipeline")
    DocBin(docs=gold).to_disk(tmp_path / "gold.spacy")
    from spacy.cli.evaluate import evaluate

    result = evaluate(str(tmp_path / "pipeline"), tmp_path / "gold.spacy", silent=True)
    assert result["ents_f"] == 1.0 and result["tag_acc"] == 1.0 and "speed" in result


def test_extensions_register_idempotently():
    from spacy_plugin.component import register_extensions

    register_extensions()
    register_extensions()
    assert Doc.has_extension("seqexit_flops") and Span.has_extension("confidence")
    doc = spacy.blank("en")("untouched")
    assert doc._.seqexit_flops is None and doc[0]._.exit_layer is None and doc[:1]._.confidence is None


@pytest.mark.slow
def test_int8_setting_with_its_own_presets_and_round_trip(spacy_ner_model, model_copy, tmp_path):
    folder = model_copy(spacy_ner_model)
    fast, fast_int8 = ExitPolicy.tokee(0.6, window=1), ExitPolicy.tokee(0.4, window=0)
    save_presets(folder, [Preset("fast", fast, "f1", 80.0, 81.0, 2.0, 2.5)])
    save_presets(folder, [Preset("fast", fast_int8, "f1", 79.0, 81.0, 2.0, 2.5, quantize="int8")], quantize="int8")
    nlp = ner_pipe(folder, preset="fast", quantize="int8")
    component = nlp.get_pipe("seqexit_ner")
    assert component.policy == fast_int8 and component.presets["fast"].quantize == "int8"
    docs = list(nlp.pipe(word_docs(nlp, EXIT_SENTENCES)))
    expected = Tagger.load(folder, quantize="int8", preset="fast").tag(EXIT_SENTENCES)
    assert [[t._.exit_layer for t in d] for d in docs] == [e.exit_layers for e in expected]
    assert [ents(d) for d in docs] == [[(s.start, s.end, s.label) for s in e.spans] for e in expected]
    nlp.to_disk(tmp_path / "pipeline")
    shutil.rmtree(folder)
    loaded = spacy.load(tmp_path / "pipeline")
    restored = loaded.get_pipe("seqexit_ner")
    assert restored.quantize == "int8" and restored.policy == fast_int8
    assert restored.seqexit_model.quantized is None, "the float weights are what is saved"
    assert [annotations(d) for d in loaded.pipe(word_docs(loaded, EXIT_SENTENCES))] == [annotations(d) for d in docs]
    as_float = spacy.load(tmp_path / "pipeline", config={"components": {"seqexit_ner": {"quantize": None}}})
    assert as_float.get_pipe("seqexit_ner").policy == fast, "the float presets survived the round trip too"


def test_int8_setting_errors(spacy_ner_model):
    with pytest.raises(ValueError, match="unknown quantize value 'int4'; choose one of: none, int8"):
        ner_pipe(spacy_ner_model, quantize="int4")
    with pytest.raises(ValueError, match="CPU only|no CUDA GPU is available"):  # which, depends on the machine
        ner_pipe(spacy_ner_model, quantize="int8", device="cuda")
    with pytest.raises(ValueError, match="unknown int8 preset 'fast'.*no int8 presets.*--quantize int8"):
        ner_pipe(spacy_ner_model, preset="fast", quantize="int8")


# The exit policy block: [components.NAME.policy] with @misc = "seqexit.exit_policy.v1".

FLAT_KEYS = ("mode", "threshold", "window", "min_layer", "static_layer", "criterion", "patience")


def test_policy_block_defaults_are_exit_policys():
    from spacy_plugin.component import COMMON_CONFIG, POLICY_DEFAULTS, make_exit_policy

    assert tuple(POLICY_DEFAULTS) == FLAT_KEYS
    assert ExitPolicy.from_dict(POLICY_DEFAULTS) == make_exit_policy() == ExitPolicy()
    assert ExitPolicy().window == 2 and COMMON_CONFIG["policy"]["@misc"] == "seqexit.exit_policy.v1"
    assert not set(FLAT_KEYS) & set(COMMON_CONFIG)  # no policy setting at the top of the config


def test_policy_block_in_the_config(spacy_ner_model, spacy_pos_model):
    ner = ExitPolicy.tokee([0.6, 0.5, 0.4, 0.3], window=1, min_layer=2, criterion="confidence")
    nlp = ner_pipe(spacy_ner_model, policy={"mode": "tokee", "threshold": [0.6, 0.5, 0.4, 0.3], "window": 1, "min_layer": 2,
                                            "criterion": "confidence"})  # a plain dict: spaCy adds the default block's @misc
    nlp.add_pipe("seqexit_tagger", config={"model": str(spacy_pos_model), "policy": {"mode": "sentee", "threshold": 0.2}})
    assert nlp.get_pipe("seqexit_ner").policy == ner and nlp.get_pipe("seqexit_tagger").policy == ExitPolicy.sentee(0.2)
    block = nlp.config["components"]["seqexit_ner"]
    assert dict(block["policy"]) == {"@misc": "seqexit.exit_policy.v1", **ner.to_dict()}
    assert all(block[key] is None for key in FLAT_KEYS)  # the flat keys of older pipelines: unset
    text = nlp.config.to_str()
    assert "[components.seqexit_ner.policy]\n" in text and '@misc = "seqexit.exit_policy.v1"' in text
    again = spacy.util.load_model_from_config(spacy.util.load_config_from_str(text))  # config.cfg's form, parsed back
    assert again.get_pipe("seqexit_ner").policy == ner and again.get_pipe("seqexit_tagger").policy == ExitPolicy.sentee(0.2)
    docs = list(nlp.get_pipe("seqexit_ner").pipe(word_docs(nlp, EXIT_SENTENCES)))  # the tagger would overwrite exit_layer
    expected = Tagger.load(spacy_ner_model, policy=ner).tag(EXIT_SENTENCES)
    assert [[t._.exit_layer for t in d] for d in docs] == [e.exit_layers for e in expected]
    assert pickle.loads(pickle.dumps(nlp.get_pipe("seqexit_ner"))).policy == ner


def flat_policy_config(folder: Path) -> None:
    """Rewrite a saved pipeline's config.cfg the way the release before the policy block saved
    it: the policy's settings as flat keys at the top of each seqexit component, no block."""
    config = spacy.util.load_config(folder / "config.cfg", interpolate=False)
    for block in config["components"].values():
        policy = dict(block.pop("policy"))
        policy.pop("@misc")
        block.update(policy)
    config.to_disk(folder / "config.cfg")


def test_pipeline_saved_with_flat_policy_keys_loads_the_same(spacy_ner_model, spacy_pos_model, tmp_path):
    nlp = ner_pipe(spacy_ner_model, policy={"mode": "tokee", "threshold": 0.5, "window": 1, "min_layer": 2}, batch_size=4)
    nlp.add_pipe("seqexit_tagger", config={"model": str(spacy_pos_model),
                                           "policy": {"mode": "sentee", "threshold": 0.3, "criterion": "confidence"}})
    before = [annotations(d) for d in nlp.pipe(TEXTS)]
    nlp.to_disk(tmp_path / "new")
    shutil.copytree(tmp_path / "new", tmp_path / "old")
    flat_policy_config(tmp_path / "old")
    text = (tmp_path / "old" / "config.cfg").read_text()
    assert ".policy]" not in text and "@misc" not in text
    ner_block = text.split("[components.seqexit_ner]")[1].split("\n[")[0]
    assert all(f"\n{key} = " in ner_block for key in FLAT_KEYS) and 'mode = "tokee"' in ner_block and "window = 1" in ner_block

    with pytest.warns(UserWarning, match=r"exit policy keys at the top of the component's config .* are deprecated") as seen:
        old = spacy.load(tmp_path / "old")
    messages = [str(w.message) for w in seen if "deprecated" in str(w.message)]
    assert len(messages) == 2 and "[components.seqexit_tagger.policy]" in messages[1]
    assert '@misc = "seqexit.exit_policy.v1"' in messages[0]
    new = spacy.load(tmp_path / "new")
    for name in ("seqexit_ner", "seqexit_tagger"):
        assert old.get_pipe(name).policy == new.get_pipe(name).policy == nlp.get_pipe(name).policy
    assert old.get_pipe("seqexit_ner").policy == ExitPolicy.tokee(0.5, window=1, min_layer=2)
    assert [annotations(d) for d in old.pipe(TEXTS)] == [annotations(d) for d in new.pipe(TEXTS)] == before

    mixed = spacy.util.load_config(tmp_path / "old" / "config.cfg", interpolate=False)
    mixed["components"]["seqexit_ner"]["policy"] = {"@misc": "seqexit.exit_policy.v1", "mode": "sentee"}
    mixed.to_disk(tmp_path / "old" / "config.cfg")
    with pytest.raises(ValueError, match=r"given twice, as flat keys \(mode, threshold, window, min_layer, criterion\) in "
                                         r"\[components.seqexit_ner\] and as the block \[components.seqexit_ner.policy\]"):
        spacy.load(tmp_path / "old")


def test_flat_policy_keys_in_python(spacy_ner_model):
    with pytest.warns(UserWarning, match="deprecated"):
        nlp = ner_pipe(spacy_ner_model, mode="tokee", threshold=0.4)
    assert nlp.get_pipe("seqexit_ner").policy == ExitPolicy.tokee(0.4)  # the others: the defaults (window 2)
    with pytest.raises(ValueError, match="given twice"):
        ner_pipe(spacy_ner_model, window=1, policy={"mode": "tokee"})


@pytest.mark.slow
@pytest.mark.integration
def test_saved_policy_block_loads_in_a_fresh_process(spacy_ner_model, tmp_path):
    ner_pipe(spacy_ner_model, policy={"mode": "tokee", "threshold": 0.3, "window": 1}).to_disk(tmp_path / "pipeline")
    done = run_python(f"""
        import sys, warnings, spacy
        warnings.simplefilter("error", UserWarning)
        nlp = spacy.load({str(tmp_path / "pipeline")!r})  # finds seqexit.exit_policy.v1 with no import of the plugin
        print(nlp.get_pipe("seqexit_ner").policy)
    """)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "tokee threshold 0.3 window 1"
