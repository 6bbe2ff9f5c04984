import pytest

from seqexit.evaluation import PolicyScore, frontier, score_at_speedup, sweep
from seqexit.exits import ExitPolicy


def point(score, speedup):
    return PolicyScore(ExitPolicy(), score, "f1", speedup, 1.0, [], 0.0)


def test_frontier_keeps_only_undominated_points_in_speedup_order():
    points = [point(90, 1.0), point(85, 2.0), point(80, 1.5), point(70, 3.0), point(86, 1.8), point(60, 2.5)]
    assert [(p.score, p.flops_speedup) for p in frontier(points)] == [(90, 1.0), (86, 1.8), (85, 2.0), (70, 3.0)]


def test_score_at_speedup_interpolates_on_the_frontier():
    points = [point(90, 1.0), point(80, 2.0), point(60, 4.0)]
    assert score_at_speedup(points, 1.5) == pytest.approx(85)
    assert score_at_speedup(points, 3.0) == pytest.approx(70)
    assert score_at_speedup(points, 5.0) is None
    assert score_at_speedup([point(88, 1.3)], 1.1) == 88


def test_sweep_covers_every_setting(make_tagger):
    from seqexit.data import Sentence

    model = make_tagger(4)
    gold = [Sentence(["john", "smith", "said"], ["B-PER", "I-PER", "O"]), Sentence(["paris"], ["B-LOC"])]
    scores = sweep(model, gold, thresholds=(0.0, 2.0), windows=(0, 1))
    assert [(s.policy.window, s.policy.threshold) for s in scores] == [(0, 0.0), (0, 2.0), (1, 0.0), (1, 2.0)]
    assert scores[1].words_per_layer == [4, 0, 0, 0] and scores[0].words_per_layer == [0, 0, 0, 4]
    assert scores[1].flops_speedup > 3 > scores[0].flops_speedup
