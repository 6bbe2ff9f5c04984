"""`Sentence`: the unit that flows from readers to models and back to writers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Sentence:
    """A sentence as words, with optional gold tags (in seqexit's internal scheme).

    `source` and `lines` tie every word back to its input file and 1-based line, so that any
    later problem (an unknown label, say) can be reported where the user can fix it.
    """

    words: list[str]
    tags: list[str] | None = None
    source: str | None = None
    lines: list[int] | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.tags is not None and len(self.tags) != len(self.words):
            raise ValueError(f"{len(self.words)} words but {len(self.tags)} tags")
        if self.lines is not None and len(self.lines) != len(self.words):
            raise ValueError(f"{len(self.words)} words but {len(self.lines)} line numbers")

    def __len__(self) -> int:
        return len(self.words)

    def where(self, index: int = 0) -> str:
        """`file:line` of word `index`, for messages."""
        src = self.source or "<input>"
        if self.lines:
            return f"{src}:{self.lines[index]}"
        return src
