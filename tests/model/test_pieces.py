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


def test_long_sentence_is_split_into_overlapping_windows_never_truncated(tiny_backbone):
    encoder = WordPieceEncoder(AutoTokenizer.from_pretrained(str(tiny_backbone)), max_pieces=10)
    words = ["john", "abc", "said", "paris", "xyz", "london"] * 3  # 1-3 pieces each
    [chunks] = encoder.encode([words])
    assert len(chunks) > 1
    assert all(len(c.input_ids) <= 10 for c in chunks)
    owned = [c.owned_words for c in chunks]
    assert owned[0][0] == 0 and owned[-1][1] == len(words)
    assert all(a[1] == b[0] for a, b in zip(owned, owned[1:])), "owned ranges tile the sentence"
    assert all(c.word_offset <= s and e <= c.word_offset + c.n_words for c, (s, e) in zip(chunks, owned))
    assert any(a.word_offset + a.n_words > b.word_offset for a, b in zip(chunks, chunks[1:])), "windows overlap"
    for chunk in chunks:  # each window holds exactly its words' pieces
        pieces = [p for w in words[chunk.word_offset : chunk.word_offset + chunk.n_words] for p in encoder.word_pieces([[w]])[0][0]]
        assert chunk.input_ids[1:-1] == pieces


def test_one_word_longer_than_the_window_keeps_its_label(tiny_backbone):
    encoder = WordPieceEncoder(AutoTokenizer.from_pretrained(str(tiny_backbone)), max_pieces=6)
    [chunks] = encoder.encode([["john", "abcdefghij", "said"]])
    assert [c.owned_words for c in chunks][0][0] == 0 and chunks[-1].owned_words[1] == 3
    assert all(len(c.input_ids) <= 6 for c in chunks)
