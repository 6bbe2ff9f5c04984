"""`seqexit calibrate` and `seqexit info` end to end on a tiny random model."""

import json
import shutil

import pytest
import typer
from typer.testing import CliRunner

from cli.calibrate import calibrate
from cli.info import info
from seqexit.bundle import PRESETS_FILE, load_presets
from seqexit.data import Sentence
from seqexit.evaluation import PolicyScore
from seqexit.evaluation.calibrate import NAMED_DROPS, pick_at_speedup, pick_within_drop
from seqexit.evaluation.calibrate import calibrate as run_calibration
from seqexit.exits import ExitPolicy, run_policy

runner = CliRunner()
app = typer.Typer(pretty_exceptions_enable=False)
app.command()(calibrate)
app.command()(info)

DEV = """\
John B-PER
Smith I-PER
said O
in O
Paris B-LOC

Mary B-PER
was O
in O
the O
united B-ORG
nations I-ORG
"""


@pytest.fixture(scope="module")
def trained(ner_model, tmp_path_factory):
    """A copy of the session's tiny NER model (calibrate writes into its folder) and a dev file."""
    folder = tmp_path_factory.mktemp("calibrate")
    (folder / "train.conll").write_text(DEV)
    shutil.copytree(ner_model, folder / "run" / "model")
    return folder


@pytest.fixture(scope="module")
def calibrated(trained):
    """The --json payload of `calibrate MODEL DEV --max-drop 0.5`."""
    result = runner.invoke(app, ["calibrate", str(trained / "run" / "model"), str(trained / "train.conll"),
                                 "--max-drop", "0.5", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_calibrate_picks_within_the_bound_and_stores_presets(trained, calibrated):
    model = trained / "run" / "model"
    full, chosen = calibrated["full_score"], calibrated["chosen"]
    assert calibrated["metric"] == "f1"
    assert chosen["name"] == "calibrated" and chosen["max_drop"] == 0.5
    assert chosen["score"] >= full - 0.5
    assert set(calibrated["presets"]) == {"accurate", "balanced", "fast", "calibrated"}
    rows = calibrated["rows"]
    assert rows[0]["policy"]["mode"] == "full" and rows[0]["score"] == full and rows[0]["flops_speedup"] == 1.0
    assert {r["policy"]["mode"] for r in rows[1:]} == {"tokee", "sentee"}
    assert len(rows) == 1 + 2 * 7 * 3
    fastest_within = max(r["flops_speedup"] for r in rows if r["score"] >= full - 0.5)
    assert chosen["flops_speedup"] == fastest_within
    for name, drop in (("accurate", 0.1), ("balanced", 1.0), ("fast", 3.0)):
        preset = calibrated["presets"][name]
        assert preset["score"] >= full - drop and preset["max_drop"] == drop
    stored = load_presets(model)
    assert set(stored) == {"accurate", "balanced", "fast", "calibrated"}
    assert stored["calibrated"].policy == ExitPolicy.from_dict(chosen["policy"])
    assert stored["calibrated"].data == str(trained / "train.conll")


def test_info_lists_the_presets(trained, calibrated):
    model = trained / "run" / "model"
    result = runner.invoke(app, ["info", str(model), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["path"] == str(model) and payload["task"] == "ner" and payload["scheme"] == "iob2"
    assert payload["layers"] == 4 and payload["hidden_size"] == 32 and payload["model_type"] == "bert"
    assert payload["parameters"] > 0 and "B-PER" in payload["labels"]
    assert payload["presets"] == calibrated["presets"]
    text = runner.invoke(app, ["info", str(model)])
    assert text.exit_code == 0, text.output
    assert all(name in text.stdout for name in ("accurate", "balanced", "fast", "calibrated"))


def test_speedup_bound_out_of_reach_falls_back_to_full_depth(trained, calibrated):
    model = trained / "run" / "model"
    result = runner.invoke(app, ["calibrate", str(model), str(trained / "train.conll"), "--speedup", "1000",
                                 "--name", "quick"])
    assert result.exit_code == 0, result.output
    assert "chosen: quick = full depth (no policy reached a FLOPs speed-up of x1000)" in result.stdout
    stored = load_presets(model)
    assert stored["quick"].fallback and stored["quick"].policy == ExitPolicy() and stored["quick"].min_speedup == 1000
    assert "calibrated" in stored, "other named presets are kept"


def test_info_on_a_folder_that_is_not_a_model(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not a seqexit model folder" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_info_without_presets_says_how_to_make_them(trained, tmp_path):
    model = trained / "run" / "model"
    bare = tmp_path / "bare"
    bare.mkdir()
    for path in model.iterdir():
        if path.is_file() and path.name != PRESETS_FILE:  # not the runtime's graph cache (.cache/)
            (bare / path.name).write_bytes(path.read_bytes())
    result = runner.invoke(app, ["info", str(bare)])
    assert result.exit_code == 0, result.output
    assert "no presets: run seqexit calibrate" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--max-drop", "1", "--speedup", "2"], "either --max-drop or --speedup"),
    (["--max-drop", "-1"], "--max-drop must be >= 0"),
    (["--speedup", "-2"], "--speedup must be >= 0"),
    (["--name", "fast"], "built-in preset"),
    (["--name", "a b"], "preset name"),
])
def test_bad_calibrate_options_exit_2(trained, args, message):
    result = runner.invoke(app, ["calibrate", str(trained / "run" / "model"), str(trained / "train.conll"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def score(policy, value, speedup):
    return PolicyScore(policy, value, "f1", speedup, 2.0, [], 0.0)


def test_pickers_respect_their_bounds():
    full = score(ExitPolicy(), 90.0, 1.0)
    slow_but_exact = score(ExitPolicy.tokee(0.02), 90.0, 0.97)
    mild = score(ExitPolicy.tokee(0.1), 89.5, 1.4)
    fast = score(ExitPolicy.tokee(0.4), 86.0, 2.5)
    rows = [full, slow_but_exact, mild, fast]
    assert pick_within_drop(rows, 90.0, 0.0) is full, "no early exit is both exact and faster than full depth"
    assert pick_within_drop(rows, 90.0, 0.5) is mild, "a drop of exactly the bound is within it"
    assert pick_within_drop(rows, 90.0, 4.0) is fast
    assert pick_at_speedup(rows, 1.2) is mild and pick_at_speedup(rows, 2.0) is fast
    assert pick_at_speedup(rows, 0.9) is full and pick_at_speedup(rows, 3.0) is None


def test_calibrate_on_a_model_scored_against_its_own_full_depth(make_tagger, sentences):
    model = make_tagger(4)
    full = run_policy(model, sentences, ExitPolicy())
    gold = [Sentence(words, out.labels(model)) for words, out in zip(sentences, full.sentences)]
    result = run_calibration(model, gold, max_drop=20.0, name="mine", data="gold.conll")
    assert result.full_score == 100.0 and result.rows[0].policy == ExitPolicy()
    assert result.chosen is result.presets["mine"] and result.chosen.score >= 80.0
    assert result.chosen.data == "gold.conll" and result.chosen.sentences == len(gold)
    assert set(result.presets) == {"accurate", "balanced", "fast", "mine"}
    for name, drop in NAMED_DROPS.items():
        preset = result.presets[name]
        assert preset.score >= 100.0 - drop and preset.max_drop == drop
        assert preset.fallback == (preset.policy.mode == "full")
        if not preset.fallback:
            assert preset.flops_speedup > 1.0
    with pytest.raises(ValueError, match="not both"):
        run_calibration(model, gold, max_drop=1.0, speedup=2.0)
    with pytest.raises(ValueError, match="built-in preset name"):
        run_calibration(model, gold, name="fast")


def test_a_stored_preset_drives_tag_and_evaluate(trained, calibrated):
    from cli.main import app as main_app

    model, data = str(trained / "run" / "model"), str(trained / "train.conll")
    policy = calibrated["presets"]["fast"]["policy"]
    explicit = ["--exit-layer", str(policy["static_layer"])] if policy["mode"] == "static" else [
        "--mode", policy["mode"], "--threshold", str(policy["threshold"]), "--window", str(policy["window"])]
    by_preset = runner.invoke(main_app, ["tag", data, "-m", model, "--preset", "fast", "-f", "jsonl"])
    by_options = runner.invoke(main_app, ["tag", data, "-m", model, *explicit, "-f", "jsonl"])
    assert by_preset.exit_code == 0, by_preset.output
    assert by_preset.stdout == by_options.stdout
    scored = json.loads(runner.invoke(main_app, ["evaluate", model, data, "--preset", "fast", "--json"]).stdout)
    assert scored["policy"] == policy and scored["score"] == pytest.approx(calibrated["presets"]["fast"]["score"])
    unknown = runner.invoke(main_app, ["tag", data, "-m", model, "--preset", "nope"])
    assert unknown.exit_code == 2 and "fast" in unknown.output


@pytest.mark.slow
def test_int8_calibration_stores_int8_presets_beside_the_float_ones(trained, calibrated):
    from cli.main import app as main_app

    model, data = trained / "run" / "model", str(trained / "train.conll")
    floats_before = load_presets(model)
    result = runner.invoke(app, ["calibrate", str(model), data, "--quantize", "int8", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["quantize"] == "int8" and payload["full_score"] == calibrated["full_score"], \
        "int8 drops are measured against the float model's full depth"
    int8 = load_presets(model, quantize="int8")
    assert set(int8) == {"accurate", "balanced", "fast", "calibrated"}
    assert all(p.quantize == "int8" and p.full_score == calibrated["full_score"] for p in int8.values())
    assert load_presets(model) == floats_before, "the float presets are kept as they were"
    shown = runner.invoke(app, ["info", str(model)])
    assert shown.exit_code == 0 and "int8 presets" in shown.stdout
    assert json.loads(runner.invoke(app, ["info", str(model), "--json"]).stdout)["int8_presets"] == payload["presets"]
    scored = json.loads(runner.invoke(main_app, ["evaluate", str(model), data, "--preset", "fast", "--quantize", "int8",
                                                 "--json"]).stdout)
    assert scored["policy"] == payload["presets"]["fast"]["policy"]
    assert scored["score"] == pytest.approx(payload["presets"]["fast"]["score"])


@pytest.mark.parametrize("command", ["tag", "evaluate", "calibrate"])
def test_unknown_quantize_value_is_a_usage_error(trained, command):
    from cli.main import app as main_app

    model, data = str(trained / "run" / "model"), str(trained / "train.conll")
    args = {"tag": ["tag", data, "-m", model], "evaluate": ["evaluate", model, data],
            "calibrate": ["calibrate", model, data]}[command]
    result = runner.invoke(main_app, [*args, "--quantize", "int4"])
    assert result.exit_code == 2 and "unknown quantize value 'int4'; choose one of: none, int8" in result.output
    if command != "calibrate":
        cuda = runner.invoke(main_app, [*args, "--quantize", "int8", "--device", "cuda"])
        assert cuda.exit_code == 2 and "runs on the CPU only" in cuda.output and "Traceback" not in cuda.output


def test_calibrating_another_criterion_stores_suffixed_presets(trained, calibrated):
    from cli.main import app as main_app

    model, data = trained / "run" / "model", str(trained / "train.conll")
    result = runner.invoke(app, ["calibrate", str(model), data, "--criterion", "vote", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert {"accurate-vote", "balanced-vote", "fast-vote"} <= set(payload["presets"])
    assert {r["policy"].get("criterion", "entropy") for r in payload["rows"][1:]} == {"vote"}
    stored = load_presets(model)
    assert {"accurate", "balanced", "fast", "accurate-vote"} <= set(stored), "entropy presets stay beside them"
    assert stored["fast-vote"].fallback or stored["fast-vote"].policy.criterion == "vote"
    assert (model / "temperatures.json").is_file()
    tagged = runner.invoke(main_app, ["tag", data, "-m", str(model), "--preset", "fast-vote", "-f", "jsonl"])
    assert tagged.exit_code == 0, tagged.output
    bad = runner.invoke(app, ["calibrate", str(model), data, "--criterion", "bogus"])
    assert bad.exit_code == 2 and "--criterion must be one of entropy" in bad.output
    unlearned = runner.invoke(app, ["calibrate", str(model), data, "--criterion", "learned"])
    assert unlearned.exit_code == 2 and "seqexit learn-exits" in unlearned.output


def test_names_plain_make_another_criterion_the_default_presets(trained, calibrated, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(trained / "run" / "model", model)  # the module's model keeps its entropy presets
    data = str(trained / "train.conll")
    result = runner.invoke(app, ["calibrate", str(model), data, "--criterion", "vote", "--names", "plain", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert {"accurate", "balanced", "fast"} <= set(payload["presets"]) and "accurate-vote" not in payload["presets"]
    stored = load_presets(model)
    for name in ("accurate", "balanced", "fast"):
        assert stored[name].fallback or stored[name].policy.criterion == "vote", name
    entropy = runner.invoke(app, ["calibrate", str(model), data, "--names", "suffixed", "--json"])
    assert entropy.exit_code == 0, entropy.output
    assert {"accurate-entropy", "balanced-entropy", "fast-entropy"} <= set(load_presets(model))
    assert load_presets(model)["accurate"].policy == stored["accurate"].policy, "the plain names stay the vote picks"
    bad = runner.invoke(app, ["calibrate", str(model), data, "--names", "short"])
    assert bad.exit_code == 2 and "--names must be auto, plain or suffixed" in bad.output