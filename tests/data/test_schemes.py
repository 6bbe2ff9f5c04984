import pytest

from seqexit.data.schemes import (
    SCHEMES, Span, UnknownTagError, convert, decode_spans, detect_scheme, encode_spans, violations,
)

# "John Smith | Paris Berlin (two LOC side by side) | the EU"
SPANS = [Span("PER", 0, 2), Span("LOC", 3, 4), Span("LOC", 4, 5), Span("ORG", 6, 7)]
FORMS = {
    "iob1": ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "O", "I-ORG"],
    "iob2": ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "O", "B-ORG"],
    "iobes": ["B-PER", "E-PER", "O", "S-LOC", "S-LOC", "O", "S-ORG"],
    "bilou": ["B-PER", "L-PER", "O", "U-LOC", "U-LOC", "O", "U-ORG"],
}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_encode_decode(scheme):
    assert encode_spans(SPANS, 7, scheme) == FORMS[scheme]
    assert decode_spans(FORMS[scheme], scheme) == SPANS
    assert violations(FORMS[scheme], scheme) == []


@pytest.mark.parametrize("source", SCHEMES)
@pytest.mark.parametrize("target", SCHEMES)
def test_convert_between_every_pair(source, target):
    assert convert(FORMS[source], source, target) == FORMS[target]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_detect(scheme):
    assert detect_scheme([FORMS[scheme], ["O", "O"]]) == scheme


def test_detect_per_word_tags_is_none():
    assert detect_scheme([["DET", "NOUN"], ["-LRB-", "NN"]]) is None
    assert detect_scheme([["O", "O"]]) is None


def test_detect_majority_survives_a_few_quirks():
    iob1_with_quirk = [["I-PER", "I-PER", "O"], ["I-LOC"], ["O", "B-MISC"]]
    assert detect_scheme(iob1_with_quirk) == "iob1"


@pytest.mark.parametrize(
    "scheme, tags, index, repaired",
    [
        ("iob2", ["O", "I-PER"], 1, "B-PER"),
        ("iob1", ["O", "B-PER"], 1, "I-PER"),
        ("iobes", ["B-LOC", "O"], 0, "S-LOC"),
        ("iobes", ["I-LOC", "E-LOC"], 0, "B-LOC"),
        ("bilou", ["B-ORG", "I-ORG"], 1, "L-ORG"),
    ],
)
def test_violations(scheme, tags, index, repaired):
    [problem] = [v for v in violations(tags, scheme) if v.index == index]
    assert problem.repaired == repaired


def test_lenient_reading_matches_conlleval():
    assert decode_spans(["O", "I-PER", "I-PER", "I-LOC"], "iob2") == [Span("PER", 1, 3), Span("LOC", 3, 4)]


@pytest.mark.parametrize("tag", ["X-PER", "B-", "PER", "S-LOC"])
def test_unknown_tags_raise(tag):
    with pytest.raises(UnknownTagError, match="unknown tag"):
        decode_spans(["O", tag], "iob2")


def test_unknown_scheme():
    with pytest.raises(ValueError, match="unknown tag scheme"):
        convert(["O"], "iob3", "iob2")
