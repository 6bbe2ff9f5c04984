"""Every training recipe on a tiny random model: it lowers its own loss, keeps what it must keep
bit for bit, and records itself."""

import json

import pytest
import torch

from seqexit.bundle import load_model
from seqexit.training import (
    SelfSamplingConfig, train_distill, train_joint, train_learned_weights, train_self_sampling_guarded,
)
from seqexit.training import distill
from seqexit.training.distill import DistillObjective, distillation_loss
from seqexit.training.joint import JointObjective
from seqexit.training.learned_weights import LearnedWeightsObjective
from seqexit.training.self_sampling import SelfSamplingObjective


def objective_loss(model, objective, batches) -> float:
    """The objective on fixed batches, dropout off (the same number before and after, if nothing learned)."""
    model.eval()
    with torch.no_grad():
        return sum(float(objective(model, batch, labels)) for batch, labels in batches)


def ordinary(fresh, small_config, train, dev, folder, epochs=3):
    model = fresh()
    train_joint(model, train, dev, small_config(epochs=epochs, exit_weights="last"), folder, progress=False)
    return model


@pytest.fixture()
def frozen(small_config):
    """The lower exits alone, on a frozen encoder."""
    return small_config(learning_rate=1e-2, train_encoder=False)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["joint", "two-stage", "distill", "learned-weights", "ssft"])
def test_every_recipe_lowers_its_loss(recipe, corpus, fresh, small_config, frozen, labelled_batch, tmp_path):
    train, dev = corpus(64, 20), corpus(16, 21)
    batches = [labelled_batch(fresh(), train[i : i + 16]) for i in range(0, 64, 16)]
    if recipe in ("two-stage", "distill", "ssft"):
        model = ordinary(fresh, small_config, train, dev, tmp_path / "ordinary")
    else:
        model = fresh()
    full = small_config(exit_grad_scale=1.0)
    objective, config = {
        "joint": lambda: (JointObjective(model, full), full),
        "two-stage": lambda: (JointObjective(model, frozen), frozen),
        "distill": lambda: (DistillObjective(model, frozen), frozen),
        "learned-weights": lambda: (LearnedWeightsObjective(model, full), full),
        "ssft": lambda: (SelfSamplingObjective(model, full, SelfSamplingConfig()), full),
    }[recipe]()
    generator_state = {k: g.get_state() for k, g in objective.generators.items()}
    before = objective_loss(model, objective, batches)
    train_joint(model, train, dev, config, tmp_path / "run", progress=False, objective=objective)
    for name, generator in objective.generators.items():  # same draws for the second measurement
        generator.set_state(generator_state[name])
    after = objective_loss(model, objective, batches)
    assert after < before * 0.9, (before, after)


def test_distillation_loss_is_zero_when_an_exit_equals_the_last():
    torch.manual_seed(0)
    teacher = torch.randn(3, 5, 7)
    mask = torch.rand(3, 5) > 0.3
    for temperature in (1.0, 2.0):
        assert float(distillation_loss(teacher.clone(), teacher, mask, temperature)) == pytest.approx(0.0, abs=1e-6)
        assert float(distillation_loss(torch.randn(3, 5, 7), teacher, mask, temperature)) > 0.01
    # a shift of every logit leaves the distribution, hence the loss, unchanged; words outside the mask never count
    assert float(distillation_loss(teacher + 4.0, teacher, mask)) == pytest.approx(0.0, abs=1e-6)
    noisy = teacher.clone()
    noisy[~mask] = torch.randn(int((~mask).sum()), 7)
    assert float(distillation_loss(noisy, teacher, mask)) == pytest.approx(0.0, abs=1e-6)


def test_distill_objective_is_zero_when_every_exit_equals_the_last(corpus, fresh, frozen, labelled_batch, monkeypatch):
    model = fresh()
    batch, labels = labelled_batch(model, corpus(4, 22))
    last = model(batch)[-1].detach()
    monkeypatch.setattr(distill, "exit_logits", lambda model, *a, **k: last.expand(model.num_layers, *last.shape))
    objective = DistillObjective(model, frozen)
    assert float(objective(model, batch, labels)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow
def test_distill_second_stage_leaves_encoder_and_last_exit_bit_identical_and_reads_unlabelled_text(corpus, fresh, small_config, tmp_path):
    train, dev = corpus(48, 23), corpus(12, 24)
    unlabelled = [type(s)(s.words, None) for s in corpus(40, 25)]
    model = fresh()
    first, second = train_distill(model, train, dev, small_config(), tmp_path, unlabelled=unlabelled, progress=False)
    stage1 = load_model(tmp_path / "encoder" / "model").state_dict()
    after = model.state_dict()
    frozen = [k for k in after if not k.startswith("exits.") or k.startswith(f"exits.{model.num_layers - 1}.")]
    assert all(torch.equal(stage1[k], after[k]) for k in frozen)
    lower = [k for k in after if k.startswith("exits.0.")]
    assert not all(torch.equal(stage1[k], after[k]) for k in lower)
    assert "distill" in json.loads((tmp_path / "train_result.json").read_text())["config"]
    with pytest.raises(ValueError, match="unlabelled"):
        train_joint(fresh(), train, dev, small_config(), tmp_path / "joint", unlabelled=unlabelled,
                    progress=False)


@pytest.mark.slow
def test_learned_weights_move_are_recorded_and_resume_exactly(corpus, fresh, small_config, tmp_path, monkeypatch):
    import seqexit.training.joint as joint

    train, dev = corpus(48, 26), corpus(12, 27)
    config = small_config(epochs=2)
    whole = fresh()
    result = train_learned_weights(whole, train, dev, config, tmp_path / "whole", progress=False)
    weights = [entry["exit_weights"] for entry in result.history]
    assert len(weights) == 2 and weights[-1] != [1.0] * whole.num_layers

    calls = {"n": 0}
    real_step = joint._step

    def crash_after_seven(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 7:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(joint, "_step", crash_after_seven)
    with pytest.raises(KeyboardInterrupt):
        train_learned_weights(fresh(), train, dev, config, tmp_path / "resumed", progress=False)
    monkeypatch.setattr(joint, "_step", real_step)
    resumed = fresh()
    again = train_learned_weights(resumed, train, dev, config, tmp_path / "resumed", progress=False)
    assert [e["exit_weights"] for e in again.history] == weights
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in whole.state_dict().items())


@pytest.mark.slow
def test_ssft_guard_keeps_the_model_before_when_full_depth_drops(corpus, fresh, small_config, tmp_path, monkeypatch):
    import seqexit.training.self_sampling as ss

    train, dev = corpus(96, 28), corpus(24, 29)
    model = ordinary(fresh, small_config, train, dev, tmp_path / "ordinary", epochs=6)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def ruinous_ssft(model, train, dev, config, output_dir, **kwargs):
        with torch.no_grad():
            model.exits[-1].linear.weight.mul_(-1.0)
        return ss.TrainResult(best_dev_score=0.0, best_epoch=1, model_dir=str(output_dir))

    monkeypatch.setattr(ss, "train_self_sampling", ruinous_ssft)
    outcome = train_self_sampling_guarded(model, train, dev, small_config(), tmp_path / "ssft", tolerance=0.0,
                                          progress=False)
    assert outcome.kept == "before" and outcome.full_depth_before > 0.0 == outcome.full_depth_after
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    kept = train_self_sampling_guarded(model, train, dev, small_config(), tmp_path / "ssft2", tolerance=200.0,
                                       progress=False)
    assert kept.kept == "ssft" and not torch.equal(before["exits.3.linear.weight"], model.state_dict()["exits.3.linear.weight"])
