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


def test_word_pieces_equal_the_tokenizers_own_mapping_in_context(tiny_backbone):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_backbone))
    encoder = WordPieceEncoder(tokenizer, max_pieces=64)
    sentences = [["john", "xqz", "said", "u.s.", "paris"], ["said", "berlin-based", "xqz"], ["\u200b", "a"]]
    in_context = tokenizer(sentences, is_split_into_words=True, add_special_tokens=False)
    for i, per_word in enumerate(encoder.word_pieces(sentences)):
        expected = [[] for _ in sentences[i]]
        for piece, word in zip(in_context["input_ids"][i], in_context.word_ids(i)):
            expected[word].append(piece)
        assert per_word == [e or [tokenizer.unk_token_id] for e in expected]


def test_collate_pads_and_masks(tiny_backbone):
    encoder = WordPieceEncoder(AutoTokenizer.from_pretrained(str(tiny_backbone)), max_pieces=64)
    chunks = [c for [c] in encoder.encode([["john", "abcdef"], ["paris"]])]
    batch = encoder.collate(chunks)
    assert batch.input_ids.shape == batch.attention_mask.shape == (2, len(chunks[0].input_ids))
    assert batch.attention_mask.sum(1).tolist() == [len(c.input_ids) for c in chunks]
    assert batch.word_mask.tolist() == [[True, True], [True, False]]
    assert batch.word_starts[0].tolist() == chunks[0].word_starts and batch.word_starts[1, 0] == 1
    assert (batch.input_ids[1, len(chunks[1].input_ids):] == encoder.pad_id).all()


def test_word_pieces_ignore_padding_and_truncation_set_in_the_tokenizer_file(tiny_backbone):
    """sentence-transformers' tokenizer.json pads to the longest input and truncates: the
    pieces of a word must not depend on that (nor on the other words in the call)."""
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_backbone))
    plain = WordPieceEncoder(tokenizer, max_pieces=64).word_pieces([["john", "abcdefgh", "said"]])
    tokenizer.backend_tokenizer.enable_padding(pad_id=tokenizer.pad_token_id, pad_token="[PAD]")
    tokenizer.backend_tokenizer.enable_truncation(max_length=2)
    configured = WordPieceEncoder(tokenizer, max_pieces=64).word_pieces([["john", "abcdefgh", "said"]])
    assert configured == plain
    assert [len(p) for p in plain[0]] == [1, 8, 1]
