"""`seqexit tag --keep-columns`: CoNLL out that keeps every input line and appends the prediction
(`word ... gold pred`), so conlleval scores it; CoNLL-U keeps its lines and gains the prediction
in MISC."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.main import app
from seqexit.data import read_conllu

runner = CliRunner()

# eng.testb's layout: space-separated word POS chunk NER (IOB1), -DOCSTART- lines, a blank after every sentence
TESTB = """\
-DOCSTART- -X- -X- O

John NNP I-NP I-PER
Smith NNP I-NP I-PER
was VBD I-VP O
in IN I-PP O
Berlin NNP I-NP I-LOC
on IN I-PP O
Monday NNP I-NP O
. . O O

Reuters NNP I-NP I-ORG

-DOCSTART- -X- -X- O

Mary NNP I-NP I-PER
said VBD I-VP O
the DT I-NP O
European NNP I-NP I-ORG
Union NNP I-NP I-ORG
and CC O O
the DT I-NP O
United NNP I-NP I-ORG
Nations NNP I-NP I-ORG
said VBD I-VP O
it PRP I-NP O
was VBD I-VP O
new JJ I-ADJP O
. . O O

Paris NNP I-NP I-LOC
, , O O
London NNP I-NP I-LOC
and CC O O
Germany NNP I-NP I-LOC

"""
CONLLU = (
    "# sent_id = 1\n# text = He said it\n1\tHe\the\tPRON\tPRP\t_\t2\tnsubj\t_\t_\n"
    "2-3\tsaid-it\t_\t_\t_\t_\t_\t_\t_\t_\n2\tsaid\tsay\tVERB\tVBD\t_\t0\troot\t_\tSpaceAfter=No\n"
    "3\tit\tit\tPRON\tPRP\t_\t2\tobj\t_\t_\n\n# sent_id = 2\n1\tParis\tParis\tPROPN\tNNP\t_\t0\troot\t_\t_\n\n"
)
LABELS = {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}


def tag(*args):
    return runner.invoke(app, ["tag", *map(str, args), "--no-progress"])


def plain_labels(model, path, *extra) -> list[str]:
    result = tag(path, "-m", model, *extra)
    assert result.exit_code == 0, result.output
    return [line.split("\t")[1] for line in result.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("scheme", ["iob2", "iobes"])
def test_every_line_is_the_input_line_plus_the_prediction_in_order(ner_model, tmp_path, scheme):
    (tmp_path / "eng.testb").write_text(TESTB)
    result = tag(tmp_path / "eng.testb", "-m", ner_model, "--keep-columns", "--scheme", scheme, "-o", tmp_path / "out.conll")
    assert result.exit_code == 0, result.output
    predicted = iter(plain_labels(ner_model, tmp_path / "eng.testb", "--scheme", scheme))
    written = (tmp_path / "out.conll").read_text().split("\n")
    expected = TESTB.split("\n")
    assert len(written) == len(expected)
    for line, source in zip(written, expected):
        if not source:
            assert line == ""
        elif source.startswith("-DOCSTART-"):
            assert line == source + " O"  # its own last column: conlleval reads an O/O line
        else:
            assert line == f"{source} {next(predicted)}"
    assert next(predicted, None) is None  # every prediction written, once
    assert scheme == "iob2" or any(line.split()[-1][:2] in ("E-", "S-") for line in written if line.strip())


def test_tab_separated_input_keeps_its_tabs(ner_model, tmp_path):
    (tmp_path / "in.tsv").write_text("John\tB-PER\nSmith\tI-PER\n\nParis\tB-LOC\n")
    result = tag(tmp_path / "in.tsv", "-m", ner_model, "--keep-columns")
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.split("\n\n")[0].splitlines()]
    assert [r[:2] for r in rows] == [["John", "B-PER"], ["Smith", "I-PER"]] and all(r[2] in LABELS for r in rows)
    assert result.stdout.endswith("\n\n") and result.stdout.count("\n\n") == 2


def test_conllu_keeps_every_line_and_fills_misc(pos_model, tmp_path):
    (tmp_path / "in.conllu").write_text(CONLLU)
    result = tag(tmp_path / "in.conllu", "-m", pos_model, "--keep-columns", "-o", tmp_path / "out.conllu")
    assert result.exit_code == 0, result.output
    predicted = iter(plain_labels(pos_model, tmp_path / "in.conllu"))
    written = (tmp_path / "out.conllu").read_text().split("\n")
    source_lines = CONLLU.split("\n")
    assert len(written) == len(source_lines)
    for line, source in zip(written, source_lines):
        columns = source.split("\t")
        if len(columns) != 10 or not columns[0].isdigit():  # comments, the multi-word token, blanks
            assert line == source
        else:
            misc = f"SeqexitLabel={next(predicted)}"
            assert line == "\t".join(columns[:9] + [misc if columns[9] == "_" else f"{columns[9]}|{misc}"])
    assert [s.tags for s in read_conllu(tmp_path / "out.conllu")] == [["PRON", "VERB", "PRON"], ["PROPN"]]  # gold kept


@pytest.mark.parametrize("args, message", [
    (["in.txt"], "in.txt is read as text, which has no columns to keep"),
    (["in.jsonl"], "in.jsonl is read as jsonl"),
    (["in.conll", "-f", "jsonl"], "--keep-columns writes CoNLL"),
    (["in.conll", "-o", "OUT.spacy"], "--keep-columns writes CoNLL"),
])
def test_input_without_columns_or_output_other_than_conll_is_a_usage_error(ner_model, tmp_path, args, message):
    (tmp_path / "in.txt").write_text("John was here.\n")
    (tmp_path / "in.jsonl").write_text('{"tokens": ["John"]}\n')
    (tmp_path / "in.conll").write_text("John B-PER\n")
    args = [str(tmp_path / a) if a.startswith(("in.", "OUT")) else a for a in args]
    result = tag(args[0], "-m", ner_model, "--keep-columns", *args[1:])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def conlleval(text: str) -> float:
    """F1 the way conlleval.pl reads `word ... gold pred` lines (IOB1/IOB2; its chunk rules, ported)."""
    def split(tag):
        kind, _, label = tag.partition("-")
        return kind, label

    def end(prev, tag, prev_type, kind):
        return (prev in ("B", "I") and tag in ("B", "O")) or (prev not in ("O", ".") and prev_type != kind)

    def start(prev, tag, prev_type, kind):
        return (tag == "B") or (prev == "O" and tag == "I") or (tag not in ("O", ".") and prev_type != kind)

    correct = guessed_n = gold_n = 0
    inside = False
    last_c, last_g, last_ct, last_gt = "O", "O", "", ""
    for line in text.split("\n"):
        features = line.split() or ["-X-", "O", "O"]
        (g, gt), (c, ct) = split(features[-1]), split(features[-2])
        if features[0] == "-X-":
            g = "O"
        end_c, end_g = end(last_c, c, last_ct, ct), end(last_g, g, last_gt, gt)
        start_c, start_g = start(last_c, c, last_ct, ct), start(last_g, g, last_gt, gt)
        if inside:
            if end_c and end_g and last_gt == last_ct:
                inside, correct = False, correct + 1
            elif end_c != end_g or gt != ct:
                inside = False
        if start_c and start_g and gt == ct:
            inside = True
        gold_n += start_c
        guessed_n += start_g
        last_c, last_g, last_ct, last_gt = c, g, ct, gt
    correct += inside
    precision = correct / guessed_n if guessed_n else 0.0
    recall = correct / gold_n if gold_n else 0.0
    return 100 * 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def test_conlleval_reads_the_same_f1_as_seqexit_evaluate(ner_model, tmp_path):
    """Gold made from the model's own predictions with every third token changed, so F1 is
    neither 0 nor 100; written in IOB1 as eng.testb is."""
    from seqexit.data import convert

    (tmp_path / "words.conll").write_text(TESTB)
    predicted = iter(plain_labels(ner_model, tmp_path / "words.conll"))
    lines, sentence, count = [], [], 0
    for line in TESTB.split("\n") + [""]:
        if line and not line.startswith("-DOCSTART-"):
            tag_ = next(predicted)
            count += 1
            sentence.append((line.split()[0], tag_ if count % 3 else ("B-LOC" if tag_ == "O" else "O")))
            continue
        if sentence:
            gold = convert([t for _, t in sentence], "iob2", "iob1")
            lines += [f"{w} X {g}" for (w, _), g in zip(sentence, gold)] + [""]
            sentence = []
        if line.startswith("-DOCSTART-"):
            lines += ["-DOCSTART- -X- O", ""]
    (tmp_path / "gold.conll").write_text("\n".join(lines))
    result = tag(tmp_path / "gold.conll", "-m", ner_model, "--keep-columns", "-o", tmp_path / "out.conll")
    assert result.exit_code == 0, result.output
    scored = runner.invoke(app, ["evaluate", str(ner_model), str(tmp_path / "gold.conll"), "--json", "--no-per-exit"])
    assert scored.exit_code == 0, scored.output
    f1 = json.loads(scored.stdout)["score"]
    assert 0 < f1 < 100, f1
    assert conlleval((tmp_path / "out.conll").read_text()) == pytest.approx(f1, abs=1e-9)


def test_the_conlleval_port_scores_a_hand_worked_file():
    """tests/evaluation/test_metrics.py's file: 3 of 5 predicted spans correct, 5 gold: F1 60."""
    text = ("John B-PER B-PER\nSmith I-PER I-PER\nin O O\nParis B-LOC B-ORG\n\nthe O O\nUnited B-ORG I-ORG\n"
            "Nations I-ORG I-ORG\nsaid O O\n\nGerman B-MISC B-MISC\nenvoy O O\nMerkel B-PER O\n\nit O B-LOC\nrained O O\n")
    assert conlleval(text) == pytest.approx(60.0)
