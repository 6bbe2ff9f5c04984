import pytest
import torch

import seqexit.training.joint as joint
from seqexit.bundle import load_model
from seqexit.data import Sentence
from seqexit.evaluation import evaluate_exits
from seqexit.training import train_joint
from seqexit.training.joint import exit_weights


def test_exit_weights():
    assert torch.allclose(exit_weights(3, "layer"), torch.tensor([1 / 3, 2 / 3, 1.0]))
    assert exit_weights(3, "last").tolist() == [0.0, 0.0, 1.0]


@pytest.mark.slow
def test_joint_training_learns_and_saves_best(corpus, fresh, small_config, tmp_path):
    model = fresh()
    train, dev = corpus(96, 1), corpus(24, 2)
    before = evaluate_exits(model, dev)[-1].score
    config = small_config(epochs=6, exit_grad_scale=1.0)
    result = train_joint(model, train, dev, config, tmp_path, progress=False)
    after = evaluate_exits(model, dev)
    assert after[-1].score > 90 > before
    assert result.best_dev_score == pytest.approx(after[-1].score)
    assert len(result.history) == 6
    saved = load_model(tmp_path / "model")
    assert evaluate_exits(saved, dev)[-1].score == pytest.approx(after[-1].score)


@pytest.mark.slow
def test_same_seed_same_weights_and_resume_is_exact(corpus, fresh, small_config, tmp_path, monkeypatch):
    train, dev = corpus(64, 3), corpus(16, 4)
    config = small_config()
    reference = fresh()
    train_joint(reference, train, dev, config, tmp_path / "a", progress=False)
    again = fresh()
    train_joint(again, train, dev, config, tmp_path / "b", progress=False)
    assert all(torch.equal(x, y) for x, y in zip(reference.state_dict().values(), again.state_dict().values()))

    real_step, calls = joint._step, []

    def crash_after_13(*args):
        calls.append(1)
        if len(calls) > 13:  # dies mid-epoch 2, after the step-10 checkpoint
            raise KeyboardInterrupt
        return real_step(*args)

    monkeypatch.setattr(joint, "_step", crash_after_13)
    with pytest.raises(KeyboardInterrupt):
        train_joint(fresh(), train, dev, config, tmp_path / "c", progress=False)
    monkeypatch.setattr(joint, "_step", real_step)
    resumed = fresh()
    train_joint(resumed, train, dev, config, tmp_path / "c", progress=False)
    assert all(torch.equal(x, y) for x, y in zip(reference.state_dict().values(), resumed.state_dict().values()))


def test_resume_refuses_another_config(corpus, fresh, small_config, tmp_path):
    train, dev = corpus(16, 5), corpus(8, 6)
    train_joint(fresh(), train, dev, small_config(epochs=1), tmp_path, progress=False)
    with pytest.raises(ValueError, match="another training config"):
        train_joint(fresh(), train, dev, small_config(), tmp_path, progress=False)


def test_unknown_gold_tag_is_reported_with_its_line(fresh, small_config, tmp_path):
    bad = [Sentence(["john", "smith"], ["B-PER", "I-ORG"], source="train.conll", lines=[3, 4])]
    with pytest.raises(ValueError, match=r"train.conll:4: tag 'I-ORG'"):
        train_joint(fresh(), bad, bad, small_config(), tmp_path, progress=False)


@pytest.mark.slow
def test_grad_scale_zero_trains_encoder_and_last_exit_exactly_like_the_ordinary_fine_tune(corpus, fresh, small_config, tmp_path):
    """Full depth of the default joint recipe is the ordinary fine-tune, bit for bit."""
    train, dev = corpus(48, 8), corpus(12, 9)
    ordinary = fresh()
    train_joint(ordinary, train, dev, small_config(epochs=2, exit_weights="last"), tmp_path / "o", progress=False)
    joint_model = fresh()
    train_joint(joint_model, train, dev, small_config(epochs=2, exit_grad_scale=0.0), tmp_path / "j", progress=False)
    shared = [k for k in ordinary.state_dict() if not k.startswith("exits.") or k.startswith(f"exits.{ordinary.num_layers - 1}.")]
    assert all(torch.equal(ordinary.state_dict()[k], joint_model.state_dict()[k]) for k in shared)
    lower = [k for k in ordinary.state_dict() if k.startswith("exits.0.")]
    assert not all(torch.equal(ordinary.state_dict()[k], joint_model.state_dict()[k]) for k in lower)


@pytest.mark.slow
def test_second_stage_trains_lower_exits_and_leaves_full_depth_untouched(corpus, fresh, small_config, tmp_path):
    train, dev = corpus(64, 10), corpus(16, 11)
    model = fresh()
    train_joint(model, train, dev, small_config(exit_weights="last"), tmp_path / "first", progress=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lower_before = [s.score for s in evaluate_exits(model, dev)[:-1]]
    result = train_joint(model, train, dev, small_config(train_encoder=False), tmp_path / "second", progress=False)
    after = model.state_dict()
    frozen = [k for k in after if not k.startswith("exits.") or k.startswith(f"exits.{model.num_layers - 1}.")]
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    lower_after = [s.score for s in evaluate_exits(model, dev)[:-1]]
    assert sum(lower_after) > sum(lower_before)
    assert "mean of exits 1-3" in result.history[0]["metric"]


@pytest.mark.slow
def test_two_stage_full_depth_is_the_ordinary_fine_tune(corpus, fresh, small_config, tmp_path):
    from seqexit.training import train_two_stage

    train, dev = corpus(48, 12), corpus(12, 13)
    ordinary = fresh()
    train_joint(ordinary, train, dev, small_config(exit_weights="last"), tmp_path / "o", progress=False)
    model = fresh()
    first, second = train_two_stage(model, train, dev, small_config(), tmp_path / "t", progress=False)
    assert evaluate_exits(model, dev)[-1].score == pytest.approx(evaluate_exits(ordinary, dev)[-1].score)
    saved = load_model(tmp_path / "t" / "model")
    encoder_keys = [k for k in saved.state_dict() if k.startswith("encoder.")]
    assert all(torch.equal(saved.state_dict()[k], ordinary.state_dict()[k]) for k in encoder_keys)
    assert (tmp_path / "t" / "encoder" / "model").is_dir() and second.best_epoch >= 1
