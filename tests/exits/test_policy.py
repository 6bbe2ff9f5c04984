import math

import pytest
import torch

from seqexit.exits import ExitPolicy, normalised_entropy, window_uncertainty


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
