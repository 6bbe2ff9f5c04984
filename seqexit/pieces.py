"""Words -> word pieces: the bridge between `Sentence.words` and the encoder's input.

Each word is labelled at its first piece. A sentence longer than the encoder's window is split
at word boundaries into overlapping windows that each fit, never truncated: every word is owned
by exactly one window (the one where it has the most context on both sides) and keeps one label.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence

import torch

from .casing import casing_class


@dataclass
class EncodedChunk:
    """One encoder input: `[CLS] pieces [SEP]` for words [word_offset, word_offset + n_words)."""

    input_ids: list[int]
    word_starts: list[int]  # position of each word's first piece in input_ids
    word_offset: int = 0
    owned: tuple[int, int] | None = None  # sentence words this chunk labels; None: all of its words
    casing_ids: list[int] | None = None  # casing class of each piece's word (0 on [CLS]/[SEP]); see seqexit.casing

    @property
    def n_words(self) -> int:
        return len(self.word_starts)

    @property
    def owned_words(self) -> tuple[int, int]:
        """[start, end) in sentence word indices of the words whose labels come from this chunk."""
        return self.owned or (self.word_offset, self.word_offset + self.n_words)


@dataclass
class Batch:
    """Padded tensors for a list of chunks."""

    input_ids: torch.Tensor  # (batch, pieces) long
    attention_mask: torch.Tensor  # (batch, pieces) bool, True on real pieces
    word_starts: torch.Tensor  # (batch, words) long, 0 where padded
    word_mask: torch.Tensor  # (batch, words) bool, True on real words
    casing_ids: torch.Tensor | None = None  # (batch, pieces) long, for models with casing features

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(None if t is None else t.to(device) for t in
                       (self.input_ids, self.attention_mask, self.word_starts, self.word_mask, self.casing_ids)))


def _plain_backend(tokenizer):
    """A private copy of the Rust tokenizer with padding and truncation off: a tokenizer.json
    may switch them on (sentence-transformers models pad to the longest input), and the Python
    wrapper only overrides them per call. A byte-level pre-tokenizer reads every word as
    following a space (`add_prefix_space`), as Hugging Face reads pre-split words: its wrappers
    refuse pre-split words without it, so a tagger trained on them saw the words so, whatever
    the saved file says. None when there is no Rust tokenizer to copy."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    import json

    from tokenizers import Tokenizer

    text = backend.to_str()
    if '"ByteLevel"' in text:  # parse only what may need changing: a BERT vocabulary costs ~20 ms
        data = json.loads(text)
        _prefix_space(data.get("pre_tokenizer"))
        text = json.dumps(data)
    plain = Tokenizer.from_str(text)
    plain.no_padding()
    plain.no_truncation()
    return plain


def _prefix_space(pre_tokenizer: dict | None) -> None:
    """Set add_prefix_space on every ByteLevel step of a pre-tokenizer's JSON, in place."""
    if not isinstance(pre_tokenizer, dict):
        return
    if pre_tokenizer.get("type") == "ByteLevel":
        pre_tokenizer["add_prefix_space"] = True
    for step in pre_tokenizer.get("pretokenizers") or []:
        _prefix_space(step)


class WordPieceEncoder:
    """Turns word lists into `EncodedChunk`s with a Hugging Face fast tokenizer."""

    def __init__(self, tokenizer, max_pieces: int = 512, casing: bool = False) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("seqexit needs a fast (Rust) tokenizer to map words to word pieces")
        self.tokenizer = tokenizer
        self.max_pieces = max_pieces
        self.casing = casing  # also give each chunk its pieces' casing classes
        self.cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        self.sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id or 0
        self._backend = _plain_backend(tokenizer)

    def word_pieces(self, sentences: Sequence[Sequence[str]]) -> list[list[list[int]]]:
        """Piece ids per word per sentence; a word with no pieces (e.g. a lone control character)
        becomes the unknown piece, so that it still gets a label.

        With `is_split_into_words` a fast tokenizer pre-tokenizes every word on its own, so a
        word's pieces do not depend on its neighbours: each distinct word is tokenized once."""
        index: dict[str, int] = {}
        for words in sentences:
            for word in words:
                index.setdefault(word, len(index))
        if not index:
            return [[] for _ in sentences]
        unknown = self.tokenizer.unk_token_id
        pieces = [ids or [unknown] for ids in self._piece_ids([[word] for word in index])]
        return [[pieces[index[word]] for word in words] for words in sentences]

    def _piece_ids(self, words: list[list[str]]) -> list[list[int]]:
        """Piece ids of pre-split inputs, straight from the Rust tokenizer when there is one
        (the Python wrapper costs several times the tokenization itself); the same ids."""
        if self._backend is None:
            return self.tokenizer(words, is_split_into_words=True, add_special_tokens=False)["input_ids"]
        return [e.ids for e in self._backend.encode_batch(words, is_pretokenized=True, add_special_tokens=False)]

    def encode(self, sentences: Sequence[Sequence[str]]) -> list[list[EncodedChunk]]:
        """Chunks per sentence: one, unless the sentence overflows the encoder window; then
        windows that overlap by about half, each word owned by one of them."""
        out = []
        budget = self.max_pieces - 2
        for words, per_word in zip(sentences, self.word_pieces(sentences)):
            if sum(map(len, per_word)) <= budget:  # the common case: one window
                windows = [(0, len(per_word))]
            else:
                per_word = [pieces[:budget] for pieces in per_word]
                windows = self._windows([len(pieces) for pieces in per_word])
            chunks = []
            for i, (start, end) in enumerate(windows):
                ids, starts = [self.cls_id], []
                casing = [0] if self.casing else None
                for word, pieces in zip(words[start:end], per_word[start:end]):
                    starts.append(len(ids))
                    ids.extend(pieces)
                    if casing is not None:
                        casing.extend([casing_class(word)] * len(pieces))
                own_start = start if i == 0 else (start + windows[i - 1][1]) // 2
                own_end = end if i == len(windows) - 1 else (windows[i + 1][0] + end) // 2
                owned = None if len(windows) == 1 else (own_start, own_end)
                chunks.append(EncodedChunk(ids + [self.sep_id], starts, start, owned,
                                           None if casing is None else casing + [0]))
            out.append(chunks)
        return out

    def _windows(self, lengths: list[int]) -> list[tuple[int, int]]:
        """[start, end) word ranges that fit max_pieces - 2 and advance by about half a window."""
        budget, stride = self.max_pieces - 2, max(1, (self.max_pieces - 2) // 2)
        windows, start = [], 0
        while True:
            end, used = start, 0
            while end < len(lengths) and used + lengths[end] <= budget:
                used, end = used + lengths[end], end + 1
            windows.append((start, end))
            if end >= len(lengths):
                return windows
            step, passed = start, 0
            while step < end and passed + lengths[step] <= stride:
                passed, step = passed + lengths[step], step + 1
            start = max(step, start + 1)

    def collate(self, chunks: Sequence[EncodedChunk]) -> Batch:
        n_pieces = max(len(c.input_ids) for c in chunks)
        n_words = max(max(c.n_words for c in chunks), 1)
        input_ids = torch.tensor([c.input_ids + [self.pad_id] * (n_pieces - len(c.input_ids)) for c in chunks], dtype=torch.long)
        word_starts = torch.tensor([c.word_starts + [0] * (n_words - c.n_words) for c in chunks], dtype=torch.long)
        positions = torch.arange(max(n_pieces, n_words))
        attention_mask = positions[:n_pieces] < torch.tensor([len(c.input_ids) for c in chunks])[:, None]
        word_mask = positions[:n_words] < torch.tensor([c.n_words for c in chunks])[:, None]
        casing_ids = None
        if self.casing:
            casing_ids = torch.tensor([c.casing_ids + [0] * (n_pieces - len(c.casing_ids)) for c in chunks], dtype=torch.long)
        return Batch(input_ids, attention_mask, word_starts, word_mask, casing_ids)


def piece_words(batch: Batch) -> torch.Tensor:
    """(batch, pieces) long: the word each piece belongs to, -1 for [CLS], [SEP] and padding."""
    marks = torch.zeros_like(batch.input_ids).scatter_(1, batch.word_starts, batch.word_mask.long())
    index = marks.cumsum(1) - 1
    last = batch.attention_mask.sum(1, keepdim=True) - 1  # [SEP]
    positions = torch.arange(index.shape[1], device=index.device)[None, :]
    return index.masked_fill(positions >= last, -1)


def at_word_starts(states: torch.Tensor, word_starts: torch.Tensor) -> torch.Tensor:
    """(batch, pieces, hidden) at (batch, words) positions -> (batch, words, hidden); one flat
    index_select, several times faster on the CPU than a gather with an expanded index."""
    batch, pieces, hidden = states.shape
    flat = (word_starts + pieces * torch.arange(batch, device=states.device)[:, None]).reshape(-1)
    return states.reshape(batch * pieces, hidden).index_select(0, flat).view(*word_starts.shape, hidden)
