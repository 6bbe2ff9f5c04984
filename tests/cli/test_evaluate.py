"""`seqexit evaluate`: the human report, the --json contract, --sweep and --plot."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()

GOLD = "John B-PER\nSmith I-PER\nsaid O\nin O\nParis B-LOC\n\nThe O\nunited B-ORG\nnations I-ORG\nmet O\n"
KEYS = {"metric", "score", "per_type", "sentences", "words", "seconds", "words_per_second", "flops", "flops_full",
        "flops_speedup", "mean_exit_layer", "exit_layer_histogram", "first_stage_words", "policy"}


@pytest.fixture()
def gold(tmp_path):
    (tmp_path / "gold.conll").write_text(GOLD)
    return tmp_path / "gold.conll"


def evaluate(*args):
    return runner.invoke(app, ["evaluate", *map(str, args)])


def test_json_is_one_object_with_the_contract_keys(ner_model, gold):
    result = evaluate(ner_model, gold, "--mode", "tokee", "--threshold", "0.4", "--window", "1", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert set(record) == KEYS
    assert record["metric"] == "f1" and 0 <= record["score"] <= 100
    assert record["sentences"] == 2 and record["words"] == 9 and sum(record["exit_layer_histogram"]) == 9
    assert len(record["exit_layer_histogram"]) == 4
    assert record["flops_speedup"] == pytest.approx(record["flops_full"] / record["flops"])
    assert record["policy"] == {"mode": "tokee", "threshold": 0.4, "window": 1, "static_layer": None, "min_layer": 1}
    assert record["mean_exit_layer"] == pytest.approx(
        sum((i + 1) * n for i, n in enumerate(record["exit_layer_histogram"])) / 9)
    for scores in record["per_type"].values():
        assert set(scores) == {"precision", "recall", "f1", "support"}


def test_json_policy_of_another_criterion_with_the_default_window(ner_model, gold):
    result = evaluate(ner_model, gold, "--mode", "tokee", "--criterion", "confidence", "--threshold", "0.9", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["policy"] == {"mode": "tokee", "threshold": 0.9, "window": 2, "static_layer": None,
                                                   "min_layer": 1, "criterion": "confidence", "patience": None}


def test_full_depth_json_adds_every_exit_and_matches_the_report(ner_model, gold):
    record = json.loads(evaluate(ner_model, gold, "--json").stdout)
    assert [e["layer"] for e in record["exits"]] == [1, 2, 3, 4]
    assert record["exits"][-1]["score"] == pytest.approx(record["score"])
    assert record["exit_layer_histogram"] == [0, 0, 0, 9] and record["flops_speedup"] == pytest.approx(1.0)
    report = evaluate(ner_model, gold).stdout
    assert f"f1 {record['score']:.2f}" in report and "words/s" in report and "per type:" in report


def test_pos_json_reports_accuracy(pos_model, tmp_path):
    (tmp_path / "ud.conll").write_text("He PRON\nsaid VERB\nit PRON\n")
    record = json.loads(evaluate(pos_model, tmp_path / "ud.conll", "--json", "--exit-layer", "2").stdout)
    assert record["metric"] == "accuracy" and record["per_type"] == {}
    assert record["exit_layer_histogram"] == [0, 3, 0, 0]


@pytest.mark.slow
def test_sweep_rows_and_plot(ner_model, gold, tmp_path):
    plot = tmp_path / "tradeoff.png"
    result = evaluate(ner_model, gold, "--sweep", "--thresholds", "0.1,0.5", "--windows", "0,1", "--plot", plot, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert [r["policy"]["mode"] for r in rows] == ["full"] + ["static"] * 3 + ["tokee"] * 4 + ["sentee"] * 4
    assert all(set(r) == KEYS for r in rows)
    assert [r["exit_layer_histogram"] for r in rows[1:4]] == [[9, 0, 0, 0], [0, 9, 0, 0], [0, 0, 9, 0]]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = evaluate(ner_model, gold, "--sweep", "--thresholds", "0.1", "--windows", "0", "--sweep-modes", "tokee")
    assert table.exit_code == 0 and "tokee threshold 0.1 window 0" in table.stdout


@pytest.mark.parametrize("args,code,message", [
    (["--plot", "x.png"], 2, "--plot draws a sweep"),
    (["--sweep", "--sweep-modes", "fast"], 2, "--sweep-modes"),
    (["--sweep", "--thresholds", "a,b"], 2, "--thresholds must be"),
    (["--preset", "fast"], 2, "seqexit calibrate"),
    (["--mode", "tokee", "--criterion", "vote", "--threshold", "2"], 2,
     "--threshold 2 is out of range for --criterion vote: it is a share of the total vote weight of all exits, in [0, 1]"),
    (["--mode", "sentee", "--criterion", "rising", "--patience", "0"], 2, "--criterion rising needs --patience >= 1"),
])
def test_bad_options(ner_model, gold, args, code, message):
    result = evaluate(ner_model, gold, *args)
    assert result.exit_code == code, result.output
    assert message in result.output
