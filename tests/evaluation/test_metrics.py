"""Span scores against conlleval on a hand-made file whose scores are worked out by hand.

gold spans: PER(s1) LOC(s1) ORG(s2) MISC(s3) PER(s3) = 5
predicted:  PER(s1) ORG(s1) ORG(s2, begins with I- after O as conlleval reads it) MISC(s3) LOC(s4) = 5
correct:    PER(s1) ORG(s2) MISC(s3) = 3  ->  P = R = F1 = 60.00
per type:   PER P 100 R 50 F 66.67 | ORG P 50 R 100 F 66.67 | MISC 100 | LOC 0
strict IOB2 drops the ill-formed ORG(s2): correct 2 of 4 predicted, 5 gold -> P 50, R 40, F1 44.44
"""

import pytest

from seqexit.evaluation import accuracy, span_scores

CONLLEVAL_FILE = """\
John B-PER B-PER
Smith I-PER I-PER
in O O
Paris B-LOC B-ORG

the O O
United B-ORG I-ORG
Nations I-ORG I-ORG
said O O

German B-MISC B-MISC
envoy O O
Merkel B-PER O

it O B-LOC
rained O O
"""


def _columns(text):
    gold, predicted = [[]], [[]]
    for line in text.splitlines():
        if not line.strip():
            gold.append([]), predicted.append([])
            continue
        _, g, p = line.split()
        gold[-1].append(g), predicted[-1].append(p)
    return gold, predicted


def test_conlleval_parity():
    gold, predicted = _columns(CONLLEVAL_FILE)
    scores = span_scores(gold, predicted)
    assert (scores.precision, scores.recall, scores.f1) == pytest.approx((60.0, 60.0, 60.0))
    assert scores.support == 5
    per = {k: (round(v.precision, 2), round(v.recall, 2), round(v.f1, 2)) for k, v in scores.per_type.items()}
    assert per == {"PER": (100.0, 50.0, 66.67), "ORG": (50.0, 100.0, 66.67), "MISC": (100.0, 100.0, 100.0), "LOC": (0.0, 0.0, 0.0)}


def test_strict_mode_drops_ill_formed_spans():
    gold, predicted = _columns(CONLLEVAL_FILE)
    scores = span_scores(gold, predicted, strict=True)
    assert (round(scores.precision, 2), round(scores.recall, 2), round(scores.f1, 2)) == (50.0, 40.0, 44.44)


def test_accuracy_and_length_checks():
    assert accuracy([["A", "B"], ["C"]], [["A", "X"], ["C"]]) == pytest.approx(200 / 3)
    with pytest.raises(ValueError, match="sentence 0"):
        accuracy([["A", "B"]], [["A"]])
