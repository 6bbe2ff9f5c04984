"""`seqexit.training.train`: a whole recipe, then SSFT behind the full-depth guard, in one call."""

import pytest
import torch

import seqexit
from seqexit.evaluation import evaluate_exits
from seqexit.exits import ExitPolicy, run_policy
from seqexit.training import TrainOutcome, train


def test_two_stage_then_ssft_returns_the_model_and_its_record(tiny_backbone, corpus, small_config, tmp_path):
    assert seqexit.train is train
    train_set, dev = corpus(48, 30), corpus(12, 31)
    torch.manual_seed(0)
    outcome = train(train_set, dev, recipe="two-stage", config=small_config(epochs=2), ssft=True,
                    ssft_config=small_config(epochs=1, learning_rate=1e-3), ssft_tolerance=100.0,
                    output_dir=tmp_path, backbone=tiny_backbone, progress=False)
    assert isinstance(outcome, TrainOutcome)
    model, record = outcome.model, outcome.record
    assert model.training_record is record and record["recipe"] == "two-stage"
    assert list(outcome.stages) == ["ordinary fine-tune", "lower exits", "SSFT"]
    assert [s["stage"] for s in record["stages"]] == list(outcome.stages)
    assert [s["best_dev"] for s in record["stages"]] == [r.best_dev_score for r in outcome.stages.values()]
    assert record["stages"][-1]["config"]["epochs"] == 1 and "self_sampling" in record["stages"][-1]["config"]
    guard = record["ssft_guard"]
    assert guard["kept"] == "ssft" and outcome.ssft_kept  # a tolerance of 100 points keeps any SSFT
    assert guard["full_depth_dev_after"] == outcome.stages["SSFT"].best_dev_score
    assert len(record["train_options"]) == 1 and record["train_options"][0]["recipe"] == "two-stage"
    assert (tmp_path / "joint" / "encoder" / "model").is_dir() and (tmp_path / "ssft" / "model").is_dir()
    assert not (tmp_path / "model").exists()  # saving the final model is the caller's choice

    words = [s.words for s in dev]
    full = run_policy(model, words, ExitPolicy())
    assert full.words_per_layer == [0] * (model.num_layers - 1) + [sum(map(len, words))]
    assert evaluate_exits(model, dev, layers="last")[0].score == pytest.approx(guard["full_depth_dev_after"])


def test_ssft_from_an_init_model_extends_its_record_and_the_guard_can_discard(tiny_backbone, corpus, small_config,
                                                                             tmp_path, monkeypatch):
    import seqexit.training.self_sampling as ss

    train_set, dev = corpus(48, 32), corpus(12, 33)
    first = train(train_set, dev, recipe="joint", config=small_config(epochs=2, exit_grad_scale=1.0), ssft=False,
                  output_dir=tmp_path / "a", backbone=tiny_backbone, progress=False)
    assert first.ssft is None and not first.ssft_kept and "ssft_guard" not in first.record
    before = {k: v.clone() for k, v in first.model.state_dict().items()}

    def ruinous_ssft(model, train, dev, config, output_dir, **kwargs):
        with torch.no_grad():
            model.exits[-1].linear.weight.mul_(-1.0)
        return ss.TrainResult(best_dev_score=-1.0, best_epoch=1, model_dir=str(output_dir))  # below any dev score

    monkeypatch.setattr(ss, "train_self_sampling", ruinous_ssft)
    second = train(train_set, dev, init=first.model, ssft_config=small_config(epochs=1), ssft_tolerance=0.0,
                   output_dir=tmp_path / "b", progress=False, options={"run": 2})
    assert second.model is first.model and second.record["recipe"] == "joint"
    assert [s["stage"] for s in second.record["stages"]] == ["joint", "SSFT"]
    assert second.record["train_options"][-1] == {"run": 2} and len(second.record["train_options"]) == 2
    assert second.record["ssft_guard"]["kept"] == "before" and not second.ssft_kept
    assert all(torch.equal(before[k], v) for k, v in second.model.state_dict().items())


@pytest.mark.parametrize("kwargs, message", [
    ({"recipe": "bogus"}, "unknown recipe 'bogus'; choose one of two-stage, joint, distill, learned-weights"),
    ({"recipe": "joint", "unlabelled": "text"}, "needs recipe 'distill'"),
    ({"ssft": False, "init": "model"}, "cannot go without SSFT"),
    ({"num_layers": 2, "init": "model"}, "shape a new model"),
    ({"task": "srl"}, "task must be one of ner, chunk, pos"),
    ({"ssft_tolerance": -1.0}, "SSFT tolerance must be >= 0"),
    ({"distill_temperature": 0.0}, "temperature must be > 0"),
])
def test_bad_arguments_are_value_errors_before_any_work(kwargs, message, corpus, fresh, tmp_path):
    sentences = corpus(4, 34)
    if kwargs.get("init") == "model":
        kwargs["init"] = fresh()
    if kwargs.get("unlabelled") == "text":
        kwargs["unlabelled"] = [type(s)(s.words) for s in sentences]
    with pytest.raises(ValueError, match=message):
        train(sentences, sentences, output_dir=tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()
