import pytest
import torch

import seqexit.training.joint as joint
from seqexit.exits import ExitPolicy, run_policy
from seqexit.evaluation import evaluate_exits
from seqexit.bundle import load_model
from seqexit.training import SelfSamplingConfig, TrainConfig, train_joint, train_self_sampling
from seqexit.training.joint import JointObjective
from seqexit.training.self_sampling import SelfSamplingObjective


def test_sampled_settings_keep_the_full_and_aggressive_shares(fresh):
    objective = SelfSamplingObjective(fresh(), TrainConfig(), SelfSamplingConfig(max_threshold=0.4))
    thresholds, windows = objective.sample_settings(4000)
    assert abs((thresholds == 0).float().mean() - 0.25) < 0.03
    aggressive = thresholds == 0.4
    assert abs(aggressive.float().mean() - 0.25) < 0.03 and (windows[aggressive] == 0).all()
    assert thresholds.max() <= 0.4 and set(windows.tolist()) == {0, 1, 2}


def test_at_full_depth_the_loss_is_the_joint_loss(corpus, fresh, labelled_batch):
    model = fresh().eval()  # no dropout: both objectives see the same forward
    batch, labels = labelled_batch(model, corpus(6, 11))
    ssft = SelfSamplingObjective(model, TrainConfig(), SelfSamplingConfig(full_share=1.0, aggressive_share=0.0))
    joint_loss = JointObjective(model, TrainConfig(exit_grad_scale=1.0))(model, batch, labels)
    assert torch.allclose(ssft(model, batch, labels), joint_loss, atol=1e-5)


def test_a_word_is_trained_only_on_layers_it_reaches(corpus, fresh, labelled_batch, monkeypatch):
    model = fresh().eval()
    batch, labels = labelled_batch(model, corpus(6, 12))
    ssft = SelfSamplingObjective(model, TrainConfig(), SelfSamplingConfig(max_threshold=2.0, full_share=0.0, aggressive_share=1.0))
    # threshold 2 halts every word at layer 1: only exit 1 has anything to learn
    loss = ssft(model, batch, labels)
    loss.backward()
    assert model.exits[0].linear.weight.grad.abs().sum() > 0
    assert all(e.linear.weight.grad is None or e.linear.weight.grad.abs().sum() == 0 for e in model.exits[1:])


@pytest.mark.slow
def test_self_sampling_fine_tuning_runs_resumes_and_keeps_accuracy(corpus, fresh, small_config, tmp_path):
    train, dev = corpus(96, 1), corpus(24, 2)
    model = fresh()
    train_joint(model, train, dev, small_config(epochs=6, exit_grad_scale=1.0), tmp_path / "joint", progress=False)
    before = evaluate_exits(model, dev)[-1].score
    base = load_model(tmp_path / "joint" / "model")
    config = small_config(epochs=2, learning_rate=1e-3)
    sampling = SelfSamplingConfig(max_threshold=0.6)
    train_self_sampling(model, train, dev, config, tmp_path / "ssft", sampling=sampling, progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), base.state_dict().values()))
    assert evaluate_exits(model, dev)[-1].score >= before - 5
    run = run_policy(model, [s.words for s in dev], ExitPolicy.tokee(0.3, window=1))
    assert sum(run.words_per_layer) == sum(len(s.words) for s in dev)

    again = load_model(tmp_path / "joint" / "model")
    real_step, calls = joint._step, []

    def crash_after_7(*args):
        calls.append(1)
        if len(calls) > 7:
            raise KeyboardInterrupt
        return real_step(*args)

    joint._step = crash_after_7
    try:
        with pytest.raises(KeyboardInterrupt):
            train_self_sampling(again, train, dev, config, tmp_path / "resume", sampling=sampling, progress=False)
    finally:
        joint._step = real_step
    resumed = load_model(tmp_path / "joint" / "model")
    train_self_sampling(resumed, train, dev, config, tmp_path / "resume", sampling=sampling, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(model.state_dict().values(), resumed.state_dict().values()))


@pytest.mark.slow
def test_ssft_after_two_stage_in_one_process_trains_the_encoder(corpus, fresh, small_config, tmp_path):
    """`seqexit train` runs two-stage then SSFT on one model object: the second stage's frozen
    encoder must not stay frozen (it did once, and SSFT then trained only the lower exits)."""
    from seqexit.training import train_two_stage

    model = fresh()
    train, dev = corpus(24, 1), corpus(8, 2)
    train_two_stage(model, train, dev, small_config(epochs=1), tmp_path / "first", progress=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_self_sampling(model, train, dev, small_config(epochs=1), tmp_path / "ssft", progress=False)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("encoder.encoder.layer.") for k in changed), "SSFT must move the encoder"
    assert any(k.startswith(f"exits.{model.num_layers - 1}.") for k in changed), "and the last exit"
    assert "encoder.embeddings.word_embeddings.weight" not in changed


def _ssft_loss(model, batch, labels, **sampling) -> torch.Tensor:
    return SelfSamplingObjective(model, TrainConfig(), SelfSamplingConfig(**sampling))(model, batch, labels)


def test_distilled_ssft_targets_the_starting_models_full_depth(corpus, fresh, labelled_batch):
    from seqexit.training.distill import distillation_loss

    model = fresh().eval()
    batch, labels = labelled_batch(model, corpus(6, 13))
    loss = _ssft_loss(model, batch, labels, full_share=1.0, aggressive_share=0.0, distill_share=1.0)
    with torch.no_grad():
        logits = model(batch)  # (layers, batch, words, labels)
    words = labels != -100
    weights = torch.arange(1, model.num_layers + 1) / model.num_layers
    expected = sum(w * distillation_loss(layer, logits[-1], words) for w, layer in zip(weights, logits))
    assert loss.item() > 0 and torch.allclose(loss, expected, atol=1e-5)
    loss.backward()  # the last exit already gives the teacher's output: nothing pulls it
    assert model.exits[-1].linear.weight.grad.abs().max() < 1e-6
    assert model.exits[0].linear.weight.grad.abs().sum() > 0


def test_distilled_ssft_reads_no_gold_tag_and_mixes_linearly(corpus, fresh, labelled_batch):
    model = fresh().eval()
    batch, labels = labelled_batch(model, corpus(6, 14))
    other = labels.masked_fill(labels != -100, 1)  # every word's tag replaced
    settings = dict(max_threshold=0.4)
    distilled = _ssft_loss(model, batch, labels, distill_share=1.0, **settings)
    assert torch.allclose(distilled, _ssft_loss(model, batch, other, distill_share=1.0, **settings))
    gold = _ssft_loss(model, batch, labels, **settings)
    assert not torch.allclose(gold, _ssft_loss(model, batch, other, **settings))
    half = _ssft_loss(model, batch, labels, distill_share=0.5, **settings)
    assert torch.allclose(half, 0.5 * gold + 0.5 * distilled, atol=1e-5)


def test_the_teacher_stays_as_ssft_found_it(corpus, fresh, labelled_batch):
    model = fresh().eval()
    batch, labels = labelled_batch(model, corpus(6, 15))
    objective = SelfSamplingObjective(model, TrainConfig(), SelfSamplingConfig(distill_share=1.0))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    for _ in range(2):
        optimizer.zero_grad()
        objective(model, batch, labels).backward()
        optimizer.step()
    teacher = objective.teacher.state_dict()
    assert all(torch.equal(teacher[k], v) for k, v in start.items())
    assert not all(torch.equal(model.state_dict()[k], v) for k, v in start.items())
    assert all(p.grad is None for p in objective.teacher.parameters())


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_a_distill_share_outside_0_1_is_refused(share):
    with pytest.raises(ValueError, match="distill_share"):
        SelfSamplingConfig(distill_share=share)


def test_the_training_record_says_ssft_was_distilled(fresh):
    from seqexit.training.record import describe

    def line(share: float) -> str:
        objective = SelfSamplingObjective(fresh(), TrainConfig(), SelfSamplingConfig(distill_share=share))
        stage = {"stage": "SSFT", "config": {"epochs": 1, "learning_rate": 2e-5, **objective.record},
                 "best_epoch": 1, "best_dev": 90.0}
        return describe({"recipe": "distill", "stages": [stage]})[1]

    assert "100% of its targets the starting model's full depth" in line(1.0)
    assert "50% of its targets" in line(0.5)
    assert "targets" not in line(0.0)
