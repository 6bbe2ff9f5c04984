"""Issue 21 on the command line: empty inputs, and --on-bad-line error|warn|skip on every command
that reads a file (the readers do the work; these check the plumbing and the exit codes)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()

# line 5 is `\tO`: an empty token
BAD = "John\tB-PER\nSmith\tI-PER\n\nParis\tB-LOC\n\tO\nis\tO\n\nberlin\tB-LOC\n"


def run(*args):
    return runner.invoke(app, [*map(str, args)])


def conll_words(output: str) -> list[str]:
    return [line.split("\t")[0] for line in output.splitlines() if line.strip()]


@pytest.mark.parametrize("name", ["empty.txt", "empty.conll", "empty.jsonl"])
def test_tag_of_an_empty_file_is_empty_output_and_exit_0(ner_model, tmp_path, name):
    (tmp_path / name).write_text("")
    result = run("tag", tmp_path / name, "-m", ner_model)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"{tmp_path / name}: file is empty" in result.stderr


def test_tag_of_an_empty_file_to_a_path_writes_an_empty_file(ner_model, tmp_path):
    (tmp_path / "e.conll").write_text("\n")
    result = run("tag", tmp_path / "e.conll", "-m", ner_model, "-o", tmp_path / "out.jsonl")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.jsonl").read_text() == ""


@pytest.mark.parametrize("command", ["evaluate", "calibrate"])
def test_evaluating_or_calibrating_on_an_empty_file_is_an_error(ner_model, tmp_path, command):
    (tmp_path / "e.conll").write_text("")
    result = run(command, ner_model, tmp_path / "e.conll")
    assert result.exit_code == 1 and f"{tmp_path / 'e.conll'}: file is empty" in result.output


def test_training_on_an_empty_file_is_an_error(tmp_path):
    (tmp_path / "e.conll").write_text("")
    (tmp_path / "dev.conll").write_text("a\tO\n")
    result = run("train", "--train", tmp_path / "e.conll", "--dev", tmp_path / "dev.conll", "-o", tmp_path / "run")
    assert result.exit_code == 1 and "file is empty" in result.output


def test_stats_of_an_empty_file_are_zeros(tmp_path):
    (tmp_path / "e.conll").write_text("")
    result = run("stats", tmp_path / "e.conll", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"sentences": 0, "tokens": 0, "labels": {}, "entities": {}, "scheme": None,
                                         "problems": []}
    assert run("stats", tmp_path / "e.conll").exit_code == 0


def test_bad_line_stops_tag_by_default(ner_model, tmp_path):
    (tmp_path / "bad.conll").write_text(BAD)
    result = run("tag", tmp_path / "bad.conll", "-m", ner_model)
    assert result.exit_code == 1 and f"{tmp_path / 'bad.conll'}:5: empty token" in result.stderr


def test_tag_warn_skips_whole_sentences_and_reports_them(ner_model, tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text(BAD)
    result = run("tag", path, "-m", ner_model, "--on-bad-line", "warn")
    assert result.exit_code == 0, result.output
    assert conll_words(result.stdout) == ["John", "Smith", "berlin"]  # every word of a kept sentence, once
    assert f"{path}:5: empty token: '\\tO'; its sentence (lines 4-6) was skipped" in result.stderr
    assert "skipped 1 bad line(s) and their 1 sentence(s)" in result.stderr


def test_tag_skip_reports_the_count(ner_model, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"tokens": ["a"]}\n{"foo": 1}\n{"tokens": ["b"]}\n')
    result = run("tag", path, "-m", ner_model, "--on-bad-line", "skip", "-f", "jsonl")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["tokens"] for line in result.stdout.splitlines()] == [["a"], ["b"]]
    assert "skipped 1 bad line(s)" in result.stderr and f"{path}:2: no 'tokens'" in result.stderr


def test_stats_warn_counts_the_kept_sentences(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text(BAD)
    assert run("stats", path, "--json").exit_code == 1
    result = run("stats", path, "--json", "--on-bad-line", "warn")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tokens"] == 3
    assert f"{path}:5: empty token" in result.stderr and "skipped 1 bad line(s)" in result.stderr


def test_evaluate_warn_scores_the_kept_sentences(ner_model, tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text(BAD)
    assert run("evaluate", ner_model, path, "--no-per-exit").exit_code == 1
    result = run("evaluate", ner_model, path, "--no-per-exit", "--json", "--on-bad-line", "skip")
    assert result.exit_code == 0, result.output
    assert "skipped 1 bad line(s)" in result.stderr


@pytest.mark.parametrize("command", ["tag", "stats"])
def test_an_unknown_policy_is_a_usage_error(ner_model, tmp_path, command):
    (tmp_path / "x.conll").write_text("a\tO\n")
    args = [command, tmp_path / "x.conll"] + (["-m", ner_model] if command == "tag" else [])
    result = run(*args, "--on-bad-line", "ignore")
    assert result.exit_code == 2 and "--on-bad-line must be one of error, skip, warn" in result.output
