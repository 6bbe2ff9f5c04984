"""The command line end to end on a tiny random backbone: train, evaluate, tag, bad input."""

import json

import pytest
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()

TRAIN = """\
-DOCSTART- -X- O O

John NNP I-NP I-PER
Smith NNP I-NP I-PER
said VBD I-VP O
in IN I-PP O
Paris NNP I-NP I-LOC

Mary NNP I-NP I-PER
was VBD I-VP O
in IN I-PP O
London NNP I-NP I-LOC
"""


@pytest.fixture(scope="module")
def trained(tiny_backbone, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    (folder / "train.conll").write_text(TRAIN)
    result = runner.invoke(app, [
        "train", "--train", str(folder / "train.conll"), "--dev", str(folder / "train.conll"),
        "--output", str(folder / "run"), "--backbone", str(tiny_backbone), "--epochs", "1", "--batch-size", "2", "--no-ssft",
    ])
    assert result.exit_code == 0, result.output
    return folder


def test_train_reports_every_exit(trained):
    assert (trained / "run" / "model" / "seqexit.json").is_file()
    result = runner.invoke(app, ["evaluate", str(trained / "run" / "model"), str(trained / "train.conll")])
    assert result.exit_code == 0, result.output
    assert [line.split(":")[0] for line in result.output.splitlines() if line.startswith("exit")] == [
        "exit 1", "exit 2", "exit 3", "exit 4"]


def test_train_defaults_are_distill_and_casing_on_an_uncased_backbone(trained, tiny_backbone):
    record = json.loads((trained / "run" / "model" / "training.json").read_text())
    assert record["recipe"] == "distill" and [s["stage"] for s in record["stages"]] == [
        "ordinary fine-tune", "self-distillation"]
    assert record["train_options"][0]["casing"] is True  # auto, resolved: the tiny backbone lowercases
    info = json.loads(runner.invoke(app, ["info", str(trained / "run" / "model"), "--json"]).stdout)
    assert info["casing"] is True
    result = runner.invoke(app, [
        "train", "--train", str(trained / "train.conll"), "--dev", str(trained / "train.conll"), "--output",
        str(trained / "explicit"), "--backbone", str(tiny_backbone), "--recipe", "two-stage", "--no-casing",
        "--epochs", "1", "--batch-size", "2", "--no-ssft",
    ])
    assert result.exit_code == 0, result.output
    record = json.loads((trained / "explicit" / "model" / "training.json").read_text())
    assert record["recipe"] == "two-stage" and record["train_options"][0]["casing"] is False
    assert json.loads(runner.invoke(app, ["info", str(trained / "explicit" / "model"), "--json"]).stdout)["casing"] is False


def test_tag_writes_one_label_per_word(trained):
    out = trained / "tagged.jsonl"
    result = runner.invoke(app, ["tag", str(trained / "train.conll"), "--model", str(trained / "run" / "model"),
                                 "--output-format", "jsonl", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [len(r["tokens"]) for r in rows] == [5, 4]
    assert all(len(r["labels"]) == len(r["tokens"]) == len(r["exit_layers"]) for r in rows)


def test_bad_input_is_one_clear_line(trained, tiny_backbone):
    bad = trained / "bad.conll"
    bad.write_text("John B-PER\nSmith I-PER extra\n")
    result = runner.invoke(app, ["evaluate", str(trained / "run" / "model"), str(bad)])
    assert result.exit_code == 1, "bad file content is a runtime failure"
    assert f"{bad}:2: expected 2 columns" in result.output
    assert "Traceback" not in result.output


CONLLU = """\
1\tJohn\tJohn\tPROPN\tNNP\t_\t2\tnsubj\t_\t_
2\tsaid\tsay\tVERB\tVBD\t_\t0\troot\t_\t_
3\tit\tit\tPRON\tPRP\t_\t2\tobj\t_\t_

1\tParis\tParis\tPROPN\tNNP\t_\t0\troot\t_\t_
"""


def test_pos_training_reports_accuracy(tiny_backbone, tmp_path):
    (tmp_path / "ud.conllu").write_text(CONLLU)
    args = ["train", "--train", str(tmp_path / "ud.conllu"), "--dev", str(tmp_path / "ud.conllu"), "--task", "pos",
            "--output", str(tmp_path / "run"), "--backbone", str(tiny_backbone), "--epochs", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "exit 4: dev accuracy" in result.output
    tagged = runner.invoke(app, ["tag", str(tmp_path / "ud.conllu"), "--model", str(tmp_path / "run" / "model")])
    assert tagged.exit_code == 0, tagged.output
    rows = [line.split("\t") for line in tagged.output.splitlines() if line.strip()]
    assert [r[0] for r in rows] == ["John", "said", "it", "Paris"]
    assert all(r[1] in {"PROPN", "VERB", "PRON"} for r in rows)


def test_ner_task_on_a_pos_file_is_refused(tiny_backbone, tmp_path):
    (tmp_path / "ud.conllu").write_text(CONLLU)
    result = runner.invoke(app, ["train", "--train", str(tmp_path / "ud.conllu"), "--dev", str(tmp_path / "ud.conllu"),
                                 "--output", str(tmp_path / "run"), "--backbone", str(tiny_backbone)])
    assert result.exit_code == 1
    assert "ud.conllu:1: tag 'PROPN' is not a span tag" in result.output


def test_evaluate_a_policy_reports_score_and_flops(trained):
    model, data = str(trained / "run" / "model"), str(trained / "train.conll")
    per_exit = runner.invoke(app, ["evaluate", model, data])
    last = [line for line in per_exit.output.splitlines() if line.startswith("exit 4")][0].split()[3]  # exit 4: f1 S  ECE E%
    never = runner.invoke(app, ["evaluate", model, data, "--mode", "tokee", "--threshold", "0"])
    assert never.exit_code == 0, never.output
    assert f"f1 {last}" in never.output
    speedup = float(never.output.split("FLOPs speed-up x")[1].split()[0])
    assert 0.9 < speedup < 1.0, "nothing halts, and the lower exits still cost a little"
    always = runner.invoke(app, ["evaluate", model, data, "--mode", "tokee", "--threshold", "1"])
    assert "words exiting at layers 1..L: 9 0 0 0" in always.output


def test_tag_with_a_policy_that_halts_everything_at_layer_1_equals_static_exit_1(trained):
    model, data = str(trained / "run" / "model"), str(trained / "train.conll")
    tokee = runner.invoke(app, ["tag", data, "--model", model, "--mode", "tokee", "--threshold", "1,0,0,0"])
    static = runner.invoke(app, ["tag", data, "--model", model, "--exit-layer", "1"])
    assert tokee.exit_code == 0 and tokee.output == static.output
    bad = runner.invoke(app, ["tag", data, "--model", model, "--mode", "tokee", "--threshold", "high"])
    assert bad.exit_code == 2 and "--threshold must be a number" in bad.output


def test_ssft_recipe_starts_from_a_trained_model(trained):
    result = runner.invoke(app, [
        "train", "--init", str(trained / "run" / "model"), "--train", str(trained / "train.conll"),
        "--dev", str(trained / "train.conll"), "--output", str(trained / "ssft"), "--batch-size", "2",
    ])
    assert result.exit_code == 0, result.output
    assert (trained / "ssft" / "model" / "seqexit.json").is_file()
    assert json.loads((trained / "ssft" / "ssft" / "train_result.json").read_text())["config"]["epochs"] == 2
    refused = runner.invoke(app, ["train", "--init", str(trained / "run" / "model"), "--no-ssft", "--train",
                                  str(trained / "train.conll"), "--dev", str(trained / "train.conll"), "--output", str(trained / "x")])
    assert refused.exit_code == 2 and "init model" in refused.output and "without SSFT" in refused.output


def test_train_layers_makes_a_smaller_static_model(trained, tiny_backbone):
    result = runner.invoke(app, [
        "train", "--train", str(trained / "train.conll"), "--dev", str(trained / "train.conll"), "--output",
        str(trained / "small"), "--backbone", str(tiny_backbone), "--layers", "2", "--casing", "--epochs", "1",
        "--batch-size", "2", "--no-ssft",
    ])
    assert result.exit_code == 0, result.output
    info = json.loads(runner.invoke(app, ["info", str(trained / "small" / "model"), "--json"]).stdout)
    assert info["layers"] == 2 and info["casing"] is True
    refused = runner.invoke(app, ["train", "--init", str(trained / "run" / "model"), "--layers", "2", "--train",
                                  str(trained / "train.conll"), "--dev", str(trained / "train.conll"), "--output", str(trained / "y")])
    assert refused.exit_code == 2 and "number of layers" in refused.output


def test_unknown_recipe_is_a_usage_error(trained):
    args = ["train", "--train", str(trained / "train.conll"), "--dev", str(trained / "train.conll"), "--output",
            str(trained / "bogus")]
    result = runner.invoke(app, [*args, "--recipe", "bogus"])
    assert result.exit_code == 2 and "unknown recipe 'bogus'" in result.output and "learned-weights" in result.output
    result = runner.invoke(app, [*args, "--recipe", "joint", "--unlabelled", str(trained / "train.conll")])
    assert result.exit_code == 2 and "needs recipe 'distill'" in result.output
    assert not (trained / "bogus").exists()


@pytest.mark.slow
def test_recipe_and_ssft_decision_are_recorded_and_shown_by_info(trained, tiny_backbone):
    (trained / "raw.txt").write_text("Mary said in Berlin .\nJohn was in Paris on Monday .\n")
    result = runner.invoke(app, [
        "train", "--recipe", "distill", "--unlabelled", str(trained / "raw.txt"), "--train", str(trained / "train.conll"),
        "--dev", str(trained / "train.conll"), "--output", str(trained / "distill"), "--backbone", str(tiny_backbone),
        "--epochs", "1", "--ssft-epochs", "1", "--batch-size", "2", "--ssft-tolerance", "100",
    ])
    assert result.exit_code == 0, result.output
    record = json.loads((trained / "distill" / "model" / "training.json").read_text())
    assert record["recipe"] == "distill" and record["unlabelled"]["sentences"] == 2
    assert [s["stage"] for s in record["stages"]] == ["ordinary fine-tune", "self-distillation", "SSFT"]
    assert record["ssft_guard"]["kept"] == "ssft" and record["train_options"][0]["unlabelled"].endswith("raw.txt")
    shown = runner.invoke(app, ["info", str(trained / "distill" / "model")])
    assert shown.exit_code == 0 and "training    distill: " in shown.output and "SSFT kept" in shown.output
    as_json = json.loads(runner.invoke(app, ["info", str(trained / "distill" / "model"), "--json"]).stdout)
    assert as_json["training"]["recipe"] == "distill"
    compact = runner.invoke(app, ["compact", str(trained / "distill" / "model"), str(trained / "distill-compact"),
                                  "--backbone", str(tiny_backbone)])
    assert compact.exit_code == 0, compact.output  # the compact copy carries the record
    assert json.loads((trained / "distill-compact" / "training.json").read_text()) == record
