"""The training-recipe benchmark's verdict (benchmarks/training_recipes.py) and its run on a tiny
model: every policy measured, the SSFT guard read from the run's final model."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from training_recipes import meets_target, summarise, training_record  # noqa: E402


def run(recipe, full, at2, at3, ssft=False):
    return {"recipe": recipe, "ssft": ssft, "full_score": full, "summary": {"score_at_flops": {"2.0": at2, "3.0": at3}}}


def test_the_target_needs_full_depth_within_0_3_and_a_curve_above_joint_at_2x_and_3x():
    result = {"ordinary": 88.0, "runs": {
        "joint": run("joint", 86.0, 85.0, 83.0),
        "joint + SSFT": run("joint", 86.0, 85.5, 82.0, ssft=True),
        "distill + SSFT": run("distill", 87.8, 86.0, 83.5, ssft=True),  # meets it
        "two-stage": run("two-stage", 88.0, 86.0, 82.5),  # below joint at 3x
        "learned-weights": run("learned-weights", 87.0, 87.0, 86.0),  # full depth 1 point down
        "distill": run("distill", 88.0, 86.0, None),  # never reaches 3x
    }}
    assert meets_target(result) == {"distill + SSFT": True, "two-stage": False, "learned-weights": False, "distill": False}


def test_summary_counts_only_policies_within_0_3_of_the_ordinary_fine_tune():
    class Full:
        metric = "f1"

    rows = [{"policy_dict": {"mode": "tokee", "threshold": t, "window": 1}, "score": s, "flops_speedup": x,
             "mean_exit_layer": 2.0, "seconds": 1.0, "wall_speedup": w}
            for t, s, x, w in ((0.1, 90.0, 2.0, 1.5), (0.3, 89.5, 3.0, 2.2), (0.5, 88.0, 4.0, 3.1))]
    summary = summarise(Full(), rows, ordinary=89.8)
    assert summary["best_flops_within_0.3_of_ordinary"] == 3.0
    assert summary["score_at_flops"]["2.0"] == 90.0 and summary["score_at_flops"]["3.0"] == 89.5
    assert summary["best_score_at_wall"] == {"2.0": 89.5, "3.0": 88.0}


def test_an_ssft_model_reports_the_guard_of_its_run(tmp_path):
    (tmp_path / "run" / "ssft" / "model").mkdir(parents=True)
    (tmp_path / "run" / "model").mkdir()
    record = {"recipe": "distill", "ssft_guard": {"kept": "before"}}
    (tmp_path / "run" / "model" / "training.json").write_text(json.dumps(record))
    (tmp_path / "run" / "ssft" / "model" / "training.json").write_text(json.dumps({"recipe": "stale"}))
    assert training_record(tmp_path / "run" / "ssft" / "model") == record
    assert training_record(tmp_path / "run" / "model") == record
    assert training_record(tmp_path / "elsewhere") is None
