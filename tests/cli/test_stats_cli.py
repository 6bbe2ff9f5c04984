"""`seqexit stats` on its own tiny app: JSON keys, the report, exit codes on bad input."""

import json

import typer
from typer.testing import CliRunner

from cli.stats import stats

app = typer.Typer(pretty_exceptions_enable=False)
app.command()(stats)
app.command("noop")(lambda: None)
runner = CliRunner()

TRAIN = """\
John B-PER
Smith I-PER
said O
he I-PER

Paris B-LOC
"""


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_json_is_one_object_with_exactly_the_documented_keys(tmp_path):
    path = write(tmp_path, "train.conll", TRAIN)
    result = runner.invoke(app, ["stats", str(path), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"sentences", "tokens", "labels", "entities", "scheme", "problems"}
    assert (payload["sentences"], payload["tokens"], payload["scheme"]) == (2, 5, "iob2")
    assert payload["labels"] == {"I-PER": 2, "B-LOC": 1, "B-PER": 1, "O": 1}
    assert payload["entities"] == {"PER": 2, "LOC": 1}
    assert payload["problems"] == [{"line": 4, "message": "tag 'I-PER' is not valid IOB2 after 'O'; read as 'B-PER'"}]


def test_json_of_a_pos_file_has_a_null_scheme(tmp_path):
    path = write(tmp_path, "ud.conllu", "1\tJohn\tJohn\tPROPN\tNNP\t_\t0\troot\t_\t_\n")
    result = runner.invoke(app, ["stats", str(path), "--json", "--xpos"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["scheme"] is None and payload["entities"] == {} and payload["labels"] == {"NNP": 1}


def test_report_lists_counts_labels_entities_and_problems(tmp_path):
    path = write(tmp_path, "train.conll", TRAIN)
    result = runner.invoke(app, ["stats", str(path)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "2 sentences, 5 tokens" in out
    assert "scheme: IOB2" in out
    assert any(line.split()[:2] == ["I-PER", "2"] for line in out.splitlines())
    assert any(line.split()[:2] == ["PER", "2"] for line in out.splitlines())
    assert f"{path}:4: tag 'I-PER' is not valid IOB2 after 'O'" in out


def test_report_of_a_clean_file_says_so(tmp_path):
    path = write(tmp_path, "clean.conll", "John B-PER\nSmith I-PER\n")
    result = runner.invoke(app, ["stats", str(path)])
    assert result.exit_code == 0, result.output
    assert "no scheme problems" in result.stdout


def test_malformed_file_exits_1_with_file_and_line(tmp_path):
    path = write(tmp_path, "bad.conll", "John B-PER\nSmith I-PER extra\n")
    result = runner.invoke(app, ["stats", str(path)])
    assert result.exit_code == 1
    assert f"error: {path}:2: expected 2 columns" in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.output


def test_missing_file_exits_2(tmp_path):
    result = runner.invoke(app, ["stats", str(tmp_path / "nope.conll")])
    assert result.exit_code == 2
    assert "nope.conll" in result.stderr and "Traceback" not in result.output


def test_unknown_format_exits_2(tmp_path):
    path = write(tmp_path, "train.conll", TRAIN)
    result = runner.invoke(app, ["stats", str(path), "--format", "text"])
    assert result.exit_code == 2
    assert "--format must be auto or one of conll, conllu, jsonl" in result.stderr


def test_help_shows_an_example():
    result = runner.invoke(app, ["stats", "--help"])
    assert result.exit_code == 0
    assert "seqexit stats data/eng.train --json" in result.output
