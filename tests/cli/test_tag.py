"""`seqexit tag`: every input and output format, stdin/stdout, order, streaming, bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.main import app
from seqexit import Tagger

runner = CliRunner()

CONLL = "John B-PER\nSmith I-PER\nsaid O\n\nParis B-LOC\nis O\nbig O\n"
CONLLU = (
    "# text = He said it\n1\tHe\the\tPRON\t_\t_\t2\tnsubj\t_\t_\n2\tsaid\tsay\tVERB\t_\t_\t0\troot\t_\t_\n"
    "3\tit\tit\tPRON\t_\t_\t2\tobj\t_\t_\n\n1\tParis\tParis\tPROPN\t_\t_\t0\troot\t_\t_\n"
)
JSONL = '{"tokens": ["mary", "was", "in", "london"]}\n{"words": ["reuters"], "labels": ["B-ORG"]}\n'
TEXT = "John Smith was in Berlin on Monday. Mary said it.\n\nThe union said  so.\n"


def tag(*args, input: str | None = None):
    return runner.invoke(app, ["tag", *map(str, args)], input=input)


def conll_rows(output: str) -> list[list[str]]:
    return [line.split("\t") for line in output.splitlines() if line.strip()]


@pytest.mark.parametrize("name,content,words", [
    ("in.conll", CONLL, ["John", "Smith", "said", "Paris", "is", "big"]),
    ("in.conllu", CONLLU, ["He", "said", "it", "Paris"]),
    ("in.jsonl", JSONL, ["mary", "was", "in", "london", "reuters"]),
    ("in.txt", TEXT, "John Smith was in Berlin on Monday . Mary said it . The union said so .".split()),
])
def test_every_input_format_gives_one_label_per_word_in_order(ner_model, tmp_path, name, content, words):
    (tmp_path / name).write_text(content)
    result = tag(tmp_path / name, "-m", ner_model)
    assert result.exit_code == 0, result.output
    rows = conll_rows(result.stdout)
    assert [r[0] for r in rows] == words
    assert all(r[1] in {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"} for r in rows)


def test_stdin_to_stdout_and_several_inputs_keep_order(ner_model, tmp_path):
    (tmp_path / "a.conll").write_text(CONLL)
    piped = tag("-", "-m", ner_model, "--input-format", "conll", input=CONLL)
    assert piped.exit_code == 0, piped.output
    from_file = tag(tmp_path / "a.conll", "-m", ner_model)
    assert piped.stdout == from_file.stdout
    both = tag(tmp_path / "a.conll", "-", "-m", ner_model, input="Mary was in Paris.\n")
    assert [r[0] for r in conll_rows(both.stdout)] == ["John", "Smith", "said", "Paris", "is", "big", "Mary", "was", "in", "Paris", "."]
    twice = tag("-", "-", "-m", ner_model, input="x\n")
    assert twice.exit_code == 2 and "stdin" in twice.output


def test_jsonl_output_contract(ner_model, tmp_path):
    (tmp_path / "in.txt").write_text(TEXT)
    out = tmp_path / "out.jsonl"
    result = tag(tmp_path / "in.txt", "-m", ner_model, "-o", out, "--mode", "tokee", "--threshold", "0.5")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert {"tokens", "labels", "exit_layers", "confidences", "entities", "text"} <= set(row)
        n = len(row["tokens"])
        assert len(row["labels"]) == len(row["exit_layers"]) == len(row["confidences"]) == n
        assert all(1 <= layer <= 4 for layer in row["exit_layers"])
        assert all(0.0 < c <= 1.0 for c in row["confidences"])
        for entity in row["entities"]:
            assert 0 <= entity["start"] < entity["end"] <= n
            assert row["labels"][entity["start"]] == "B-" + entity["label"]
            assert row["text"][entity["start_char"] : entity["end_char"]] == entity["text"]
            assert entity["text"].split() == row["tokens"][entity["start"] : entity["end"]]
    assert rows[2]["text"] == "The union said  so."


def test_output_format_from_the_extension_and_the_format_option(ner_model, tmp_path):
    (tmp_path / "in.conll").write_text(CONLL)
    as_json = tag(tmp_path / "in.conll", "-m", ner_model, "--format", "jsonl")
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [r["tokens"] for r in records] == [["John", "Smith", "said"], ["Paris", "is", "big"]]
    as_iobes = tag(tmp_path / "in.conll", "-m", ner_model, "--scheme", "iobes", "--exit-layer", "2")
    as_iob2 = tag(tmp_path / "in.conll", "-m", ner_model, "--exit-layer", "2")
    from seqexit.data import convert
    iob2 = [r[1] for r in conll_rows(as_iob2.stdout)]
    assert [r[1] for r in conll_rows(as_iobes.stdout)] == convert(iob2[:3], "iob2", "iobes") + convert(iob2[3:], "iob2", "iobes")


def test_spacy_docbin_for_ner_and_pos(ner_model, pos_model, tmp_path):
    import spacy
    from spacy.tokens import DocBin

    (tmp_path / "in.txt").write_text(TEXT)
    out = tmp_path / "out.spacy"
    assert tag(tmp_path / "in.txt", "-m", ner_model, "-o", out).exit_code == 0
    docs = list(DocBin().from_disk(out).get_docs(spacy.blank("en").vocab))
    jsonl = [json.loads(line) for line in tag(tmp_path / "in.txt", "-m", ner_model, "-f", "jsonl").stdout.splitlines()]
    assert [[t.text for t in d] for d in docs] == [r["tokens"] for r in jsonl]
    assert docs[0].text == "John Smith was in Berlin on Monday."
    for doc, record in zip(docs, jsonl):
        assert [(e.start, e.end, e.label_) for e in doc.ents] == [(e["start"], e["end"], e["label"]) for e in record["entities"]]
        assert list(doc.user_data["seqexit"]["exit_layers"]) == record["exit_layers"]
    pos_out = tmp_path / "pos.spacy"
    assert tag(tmp_path / "in.txt", "-m", pos_model, "-o", pos_out).exit_code == 0
    pos_docs = list(DocBin().from_disk(pos_out).get_docs(spacy.blank("en").vocab))
    assert all(t.tag_ and t.pos_ == t.tag_ for d in pos_docs for t in d)
    refused = tag(tmp_path / "in.txt", "-m", ner_model, "-f", "spacy")
    assert refused.exit_code == 2 and "-o OUT.spacy" in refused.output


def test_bad_content_is_one_line_naming_file_and_line_and_leaves_no_output(ner_model, tmp_path):
    bad = tmp_path / "bad.conll"
    bad.write_text("John B-PER\nSmith I-PER\n\nParis B-LOC extra\n")
    out = tmp_path / "out.conll"
    result = tag(bad, "-m", ner_model, "-o", out)
    assert result.exit_code == 1
    assert f"{bad}:4: expected 2 columns" in result.output and "Traceback" not in result.output
    assert not out.exists() and list(tmp_path.glob(".out.conll*")) == []
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    latin = tag(tmp_path / "latin1.txt", "-m", ner_model)
    assert latin.exit_code == 1 and "latin1.txt:1: not valid UTF-8" in latin.output


@pytest.mark.parametrize("args,message", [
    (["missing.conll", "-m", "MODEL"], "missing.conll: no such file"),
    (["IN", "-m", "NOT_A_MODEL"], "is not a seqexit model folder"),
    (["IN", "-m", "no-such-model-name"], "no model folder or shipped model named 'no-such-model-name'"),
    (["IN", "-m", "MODEL", "--mode", "tokee", "--threshold", "-0.1"], "--threshold -0.1 is out of range for --criterion entropy"),
    (["IN", "-m", "MODEL", "--mode", "tokee", "--criterion", "confidence", "--threshold", "1.5"],
     "--threshold 1.5 is out of range for --criterion confidence: it is a probability in [0, 1]"),
    (["IN", "-m", "MODEL", "--mode", "tokee", "--criterion", "vote", "--threshold", "0.2,1.2,0.2,0.2"], "--criterion vote"),
    (["IN", "-m", "MODEL", "--mode", "tokee", "--criterion", "patience", "--patience", "2", "--threshold", "0.3"],
     "--threshold is not used by --criterion patience"),
    (["IN", "-m", "MODEL", "--mode", "tokee", "--criterion", "rising"], "--criterion rising needs --patience >= 1"),
    (["IN", "-m", "MODEL", "--mode", "tokee", "--patience", "2"], "--patience is for the criteria patience and rising"),
    (["IN", "-m", "MODEL", "--mode", "tokee", "--window", "-1"], "--window must be >= 0"),
    (["IN", "-m", "MODEL", "--min-layer", "0"], "--min-layer must be >= 1"),
    (["IN", "-m", "MODEL", "--mode", "static"], "--mode static needs --exit-layer"),
    (["IN", "-m", "MODEL", "--mode", "tokee", "--exit-layer", "2"], "--exit-layer 2 is a static exit: it cannot go with --mode tokee"),
    (["IN", "-m", "MODEL", "--mode", "fastest"], "--mode must be one of"),
    (["IN", "-m", "MODEL", "--format", "xml"], "unknown output format 'xml'"),
    (["IN", "-m", "MODEL", "--scheme", "bio"], "--scheme must be one of"),
    (["IN", "-m", "MODEL", "--device", "tpu"], "--device"),
    (["IN", "-m", "MODEL", "--exit-layer", "9"], "deeper than the model's 4 layers"),
])
def test_usage_errors_exit_2_with_one_line(ner_model, tmp_path, args, message):
    (tmp_path / "in.conll").write_text(CONLL)
    (tmp_path / "plain").mkdir()
    names = {"IN": tmp_path / "in.conll", "MODEL": ner_model, "NOT_A_MODEL": tmp_path / "plain"}
    result = tag(*[names.get(a, a) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_cli_takes_the_thresholds_the_library_takes(ner_model, tmp_path):
    (tmp_path / "in.conll").write_text(CONLL)
    always = tag(tmp_path / "in.conll", "-m", ner_model, "-f", "jsonl", "--mode", "tokee", "--threshold", "1.5")
    first = tag(tmp_path / "in.conll", "-m", ner_model, "-f", "jsonl", "--exit-layer", "1")
    assert always.exit_code == 0, always.output
    assert always.stdout == first.stdout  # entropy above 1: every word halts at the first exit
    confident = tag(tmp_path / "in.conll", "-m", ner_model, "--mode", "tokee", "--criterion", "confidence", "--threshold", "1")
    assert confident.exit_code == 0, confident.output  # a probability of 1: never halts


def test_tag_stream_keeps_order_across_chunks(make_tagger, sentences):
    tagger = Tagger(make_tagger(4), batch_size=2)
    many = [sentences[i % len(sentences)] for i in range(23)]
    streamed = list(tagger.tag_stream(iter(many), chunk_size=4))
    assert [t.words for t in streamed] == many
    assert [t.labels for t in streamed] == [t.labels for t in tagger.tag(many)]


def test_tag_stream_reads_ahead_at_most_one_chunk(make_tagger, sentences):
    tagger = Tagger(make_tagger(4), batch_size=2)
    consumed = []

    def source():
        for i in range(50):
            consumed.append(i)
            yield sentences[i % len(sentences)]

    for produced, _ in enumerate(tagger.tag_stream(source(), chunk_size=8), start=1):
        assert len(consumed) - produced < 8, "never more than one chunk held beyond what was yielded"
    assert produced == 50


def test_pretty_output_lists_each_sentences_entities_and_pos_pairs(ner_model, pos_model, tmp_path):
    (tmp_path / "in.txt").write_text(TEXT)
    pretty = tag(tmp_path / "in.txt", "-m", ner_model, "-f", "pretty", "--exit-layer", "2")
    records = [json.loads(line) for line in
               tag(tmp_path / "in.txt", "-m", ner_model, "-f", "jsonl", "--exit-layer", "2").stdout.splitlines()]
    blocks = pretty.stdout.strip("\n").split("\n\n")
    assert pretty.exit_code == 0 and len(blocks) == len(records) == 3
    for block, record in zip(blocks, records):
        first, *entities = block.split("\n")
        assert first == record["text"]
        assert [line.split(None, 1) for line in entities] == [[e["label"], e["text"]] for e in record["entities"]]
    (tmp_path / "in.conllu").write_text(CONLLU)
    pos = tag(tmp_path / "in.conllu", "-m", pos_model, "-f", "pretty")
    pairs = [p.rsplit("/", 1) for p in pos.stdout.split()]
    assert [w for w, _ in pairs] == ["He", "said", "it", "Paris"] and all(t for _, t in pairs)


def test_output_files_get_the_umask_mode_not_mkstemps_0600(ner_model, tmp_path):
    import os

    (tmp_path / "in.conll").write_text(CONLL)
    mask = os.umask(0o022)
    try:
        assert tag(tmp_path / "in.conll", "-m", ner_model, "-o", tmp_path / "out.conll").exit_code == 0
    finally:
        os.umask(mask)
    assert (tmp_path / "out.conll").stat().st_mode & 0o777 == 0o644


@pytest.mark.slow
@pytest.mark.integration
def test_a_reader_that_stops_early_ends_tagging_quietly(ner_model, tmp_path):
    """`seqexit tag big.txt | head -1`: exit 141 (as a SIGPIPE'd Unix tool), nothing on stderr."""
    import subprocess
    import sys

    (tmp_path / "big.txt").write_text("John Smith was in Berlin on Monday.\n\n" * 4000)
    command = [sys.executable, "-m", "cli.main", "tag", str(tmp_path / "big.txt"), "-m", str(ner_model), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141, stderr
    assert first.startswith(b"John\t")
    assert stderr == ""
