from transformers import AutoTokenizer

from seqexit.pieces import WordPieceEncoder


def test_first_piece_of_every_word(tiny_backbone):
    encoder = WordPieceEncoder(AutoTokenizer.from_pretrained(str(tiny_backbone)), max_pieces=64)
    [[chunk]] = encoder.encode([["john", "xqz", "said"]])
    tokens = encoder.tokenizer.convert_ids_to_tokens(chunk.input_ids)
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert [tokens[i] for i in chunk.word_starts] == ["john", "x", "said"]


def test_word_without_pieces_becomes_unknown(tiny_backbone):
    encoder = WordPieceEncoder(AutoTokenizer.from_pretrained(str(tiny_backbone)), max_pieces=64)
    [[chunk]] = encoder.encode([["john", "\u200b", "said"]])
    assert chunk.n_words == 3
    assert chunk.input_ids[chunk.word_starts[1]] == encoder.tokenizer.unk_token_id


def test_long_sentence_is_split_never_truncated(tiny_backbone):
    encoder = WordPieceEncoder(AutoTokenizer.from_pretrained(str(tiny_backbone)), max_pieces=10)
    words = ["john", "abc", "said", "paris", "xyz", "london"] * 3  # 2-3 pieces each, 42 in all
    [chunks] = encoder.encode([words])
    assert len(chunks) > 1
    assert all(len(c.input_ids) <= 10 for c in chunks)
    assert [c.word_offset for c in chunks] == [sum(c.n_words for c in chunks[:i]) for i in range(len(chunks))]
    assert sum(c.n_words for c in chunks) == len(words)
