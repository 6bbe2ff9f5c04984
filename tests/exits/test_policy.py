import math
import pickle
import re

import pytest
import torch

from seqexit.exits import ExitPolicy, normalised_entropy, window_uncertainty
from seqexit.exits.policy import PolicyError


def test_normalised_entropy_bounds_and_stability():
    uniform = torch.zeros(3, 9)
    assert torch.allclose(normalised_entropy(uniform), torch.ones(3))
    saturated = torch.tensor([[1e4, -1e4, 0.0], [-3e38, 3e38, 0.0]])
    values = normalised_entropy(saturated)
    assert torch.isfinite(values).all() and torch.allclose(values, torch.zeros(2))
    p = torch.tensor([0.5, 0.25, 0.25])
    expected = -(p * p.log()).sum() / math.log(3)
    assert torch.allclose(normalised_entropy(p.log()), expected)


def test_window_is_the_max_over_neighbours_of_the_same_row_only():
    u = torch.tensor([[0.1, 0.9, 0.2, 0.3, 0.05], [0.4, 0.1, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    assert torch.equal(window_uncertainty(u, mask, 0), u * mask)
    w1 = window_uncertainty(u, mask, 1)
    assert torch.allclose(w1[0], torch.tensor([0.9, 0.9, 0.9, 0.3, 0.3]))
    assert torch.allclose(w1[1], torch.tensor([0.4, 0.4, 0.0, 0.0, 0.0]))
    w9 = window_uncertainty(u, mask, 9)
    assert torch.allclose(w9[0], torch.full((5,), 0.9))


def test_policy_validation_and_thresholds():
    with pytest.raises(ValueError, match="mode"):
        ExitPolicy(mode="fast")
    with pytest.raises(ValueError, match="static_layer"):
        ExitPolicy(mode="static")
    with pytest.raises(ValueError, match=">= 0"):
        ExitPolicy.tokee(-0.1)
    policy = ExitPolicy.tokee([0.1, 0.2, 0.3, 0.4], window=1, min_layer=3)
    assert policy.thresholds(4) == [0.0, 0.0, 0.3, 0.4]
    with pytest.raises(ValueError, match="4 thresholds"):
        policy.thresholds(6)
    with pytest.raises(ValueError, match="deeper"):
        ExitPolicy.static(7).exit_depth(6)


def test_one_set_of_defaults():
    assert ExitPolicy().window == ExitPolicy.tokee().window == ExitPolicy.sentee().window == 2
    assert ExitPolicy.from_dict({"mode": "tokee"}) == ExitPolicy.tokee() == ExitPolicy.from_options(mode="tokee")
    from cli.policy import CRITERION, MIN_LAYER, MODE, THRESHOLD, WINDOW  # the CLI's defaults are ExitPolicy's

    options = {"mode": MODE, "threshold": THRESHOLD, "window": WINDOW, "min_layer": MIN_LAYER, "criterion": CRITERION}
    assert ExitPolicy.from_options(**{key: option.default for key, option in options.items()}) == ExitPolicy()
    assert WINDOW.default == 2


@pytest.mark.parametrize("criterion,bad,good", [
    ("entropy", [-0.1, float("nan")], [0.0, 0.3, 1.0, 1.5]),  # above 1: every word halts (still meaningful)
    ("confidence", [-0.1, 1.01, float("inf")], [0.0, 0.9, 1.0]),
    ("vote", [-0.5, 1.5], [0.0, 0.4, 1.0]),
    ("learned", [-0.1, 2.0], [0.0, 0.95, 1.0]),
])
def test_threshold_range_per_criterion(criterion, bad, good):
    for value in good:
        assert ExitPolicy.tokee(value, criterion=criterion).threshold == value
        assert ExitPolicy.tokee([0.0, value, 0.0, 0.0], criterion=criterion).threshold[1] == value
    meaning = {"entropy": "a normalised entropy in [0, 1]", "confidence": "a probability in [0, 1]",
               "vote": "a share of the total vote weight of all exits, in [0, 1]", "learned": "a probability in [0, 1]"}[criterion]
    for value in bad:
        with pytest.raises(PolicyError, match=rf"threshold .* is out of range for criterion {criterion}: it is {re.escape(meaning)}"):
            ExitPolicy.tokee(value, criterion=criterion)
        with pytest.raises(PolicyError, match="out of range"):
            ExitPolicy.tokee([0.1, value], criterion=criterion)


@pytest.mark.parametrize("criterion", ["patience", "rising"])
def test_counting_criteria_take_no_threshold(criterion):
    assert ExitPolicy.tokee(criterion=criterion, patience=2).threshold == 0.0
    with pytest.raises(PolicyError, match=rf"threshold is not used by criterion {criterion}, which counts exits in a row "
                                          r"\(patience\): leave it at 0, not 0.3"):
        ExitPolicy.tokee(0.3, criterion=criterion, patience=2)


def test_thresholds_must_be_numbers():
    for value in ("0.1", True, [], [0.1, "x"], None):
        with pytest.raises(PolicyError, match="threshold must be a number"):
            ExitPolicy(mode="tokee", threshold=value)


def test_from_options_reads_cli_style_values():
    assert ExitPolicy.from_options(mode="tokee", threshold="0.2") == ExitPolicy.tokee(0.2)
    assert ExitPolicy.from_options(mode="sentee", threshold="0.1, 0.2,0.3,0.4", window=0).threshold == (0.1, 0.2, 0.3, 0.4)
    assert ExitPolicy.from_options(mode="tokee", threshold=[0.1, 0.2], min_layer=2) == ExitPolicy.tokee((0.1, 0.2), min_layer=2)
    assert ExitPolicy.from_options(mode="tokee", threshold=0.9, criterion="confidence") == ExitPolicy.tokee(0.9, criterion="confidence")
    assert ExitPolicy.from_options(exit_layer=3, window=0) == ExitPolicy.static(3)  # implies mode static
    assert ExitPolicy.from_options(mode="static", exit_layer=3) == ExitPolicy.static(3)
    with pytest.raises(PolicyError, match="static_layer 3 is a static exit: it cannot go with mode tokee"):
        ExitPolicy.from_options(mode="tokee", exit_layer=3)
    with pytest.raises(PolicyError, match=r"threshold must be a number or comma-separated numbers \(one per layer\), not 'high'"):
        ExitPolicy.from_options(mode="tokee", threshold="high")
    with pytest.raises(PolicyError, match="mode static needs static_layer"):
        ExitPolicy.from_options(mode="static")


def test_errors_name_settings_as_the_caller_does():
    names = {"threshold": "--threshold", "criterion": "--criterion", "patience": "--patience", "static_layer": "--exit-layer"}
    with pytest.raises(PolicyError) as caught:
        ExitPolicy.from_options(mode="tokee", threshold="1.5", criterion="confidence")
    assert str(caught.value).startswith("threshold 1.5 is out of range for criterion confidence")
    assert caught.value.worded(names).startswith("--threshold 1.5 is out of range for --criterion confidence")
    with pytest.raises(PolicyError) as caught:
        ExitPolicy.from_options(mode="tokee", criterion="rising")
    assert caught.value.worded(names) == "--criterion rising needs --patience >= 1 (exits in a row), got None"
    with pytest.raises(PolicyError) as caught:
        ExitPolicy.from_options(exit_layer=0)
    assert caught.value.worded(names) == "--exit-layer must be >= 1, got 0"
    again = pickle.loads(pickle.dumps(caught.value))
    assert isinstance(again, PolicyError) and str(again) == str(caught.value)
