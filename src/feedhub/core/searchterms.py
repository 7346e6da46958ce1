"""Search terms: what the full-text index holds for an item, and what a query looks for.

Chinese has no spaces, and a reader searches for any run of characters (沂河, 招商引资), so
words from a segmenter would miss queries that cut across its words. Instead every run of
Chinese characters becomes its overlapping character pairs (招商引资 -> 招商 商引 引资), and
other words (Latin letters, digits) stay words, lowercased. A query word becomes the same
pairs as a *phrase*: consecutive pairs in the index, which is exactly "contains this run".
SQLite's FTS5 and PostgreSQL's text search (``simple`` configuration) both index such a
space-separated string and answer phrase queries from the index. A one-character Chinese query
has no pair; the storage falls back to scanning for it.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from feedhub.core.textnorm import html_to_text, nfkc

__all__ = ["MAX_TEXT", "index_terms", "item_terms", "query_phrases"]

MAX_TEXT = 600  # body characters indexed after the title: the lede says what a story is about
_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_HAN}]+|[^\W{_HAN}_]+")
_IS_HAN = re.compile(rf"[{_HAN}]")
_OTHER, _HAN_CHAR, _WORD_CHAR = 0, 1, 2
_SPACE = ord(" ")


def _tokens(text: str) -> list[list[str]]:
    """Each run of the text as its terms: Chinese runs as character pairs, words as words."""
    norm = unicodedata.normalize("NFKC", text).casefold()
    runs = []
    for run in _TOKEN.findall(norm):
        if _IS_HAN.match(run):
            if len(run) == 1:
                runs.append([run])
            else:
                runs.append([run[i : i + 2] for i in range(len(run) - 1)])
        else:
            runs.append([run])
    return runs


def index_terms(title: str, text: str = "") -> str:
    """The space-separated terms of an item, title first (text cut at ``MAX_TEXT``)."""
    return _terms(_fold(f"{title}\n{text[:MAX_TEXT]}"))


def _fold(text: str) -> str:
    return nfkc(text).casefold()


@lru_cache(maxsize=1)
def _char_classes() -> npt.NDArray[np.uint8]:
    """For every code point: a Chinese character, another word character, or neither, taken
    from the very patterns of ``_TOKEN`` so that both always agree. Built once (0.1 s)."""
    codes = np.arange(0x110000, dtype=np.uint32)
    codes[0xD800:0xE000] = 0  # surrogates are no characters of a text; NUL is neither class
    every = codes.tobytes().decode("utf-32-le")
    table = np.zeros(0x110000, dtype=np.uint8)
    for match in re.finditer(rf"[^\W{_HAN}_]+", every):
        table[match.start() : match.end()] = _WORD_CHAR
    for match in re.finditer(rf"[{_HAN}]+", every):
        table[match.start() : match.end()] = _HAN_CHAR
    table[0xD800:0xE000] = _OTHER
    return table


def _terms(norm: str) -> str:
    """The terms of a folded text, space-separated: each run of Chinese characters as its
    character pairs (a lone character as itself), each word as itself.

    Done on the code points at once, about twice as fast as a pass of ``re`` that yields each
    term: every character writes up to three slots (itself, the next character or a space, a
    space) and the slots in use are kept, in order. Every term ends in a space; the last one's
    is dropped."""
    codes = np.frombuffer(norm.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    n = codes.size
    if n == 0:
        return ""
    kind = _char_classes()[codes]
    han = kind == _HAN_CHAR
    word = kind == _WORD_CHAR
    after = np.zeros(n, dtype=np.uint8)  # the class of the next character
    after[:-1] = kind[1:]
    next_han = after == _HAN_CHAR
    prev_han = np.zeros(n, dtype=bool)
    prev_han[1:] = han[:-1]
    pair = han & next_han  # a pair starts here
    alone = han & ~next_han & ~prev_han  # a lone character
    slots = np.full((n, 3), _SPACE, dtype=np.uint32)
    slots[:, 0] = codes
    slots[:-1, 1][pair[:-1]] = codes[1:][pair[:-1]]
    used = np.empty((n, 3), dtype=bool)
    used[:, 0] = pair | alone | word  # the last of a run of Chinese characters writes nothing
    used[:, 1] = pair | alone | (word & (after != _WORD_CHAR))  # the space after a word
    used[:, 2] = pair
    out = slots[used]
    return out[:-1].tobytes().decode("utf-32-le") if out.size else ""


def query_phrases(query: str) -> tuple[list[list[str]], list[str]]:
    """The phrases (each a list of consecutive terms) every match must contain, and the
    query words that give no phrase (a lone Chinese character), which need a scan."""
    phrases: list[list[str]] = []
    leftovers: list[str] = []
    for word in query.split():
        for run in _tokens(word):
            if len(run) == 1 and len(run[0]) == 1 and _IS_HAN.match(run[0]):
                leftovers.append(run[0])
            else:
                phrases.append(run)
    return phrases, leftovers


def item_terms(
    title: str, summary: str | None, content: str | None, *, known: tuple[str, str] = ("", "")
) -> str:
    """An item's terms from its stored fields (summary and content are HTML).

    ``known`` is an HTML text and its ``html_to_text``, made already for another purpose (the
    fingerprint): used when the indexed body is that very text, instead of converting it
    again."""
    body = "\n".join(part for part in (summary, content) if part)
    if not body:
        return index_terms(title, "")
    body = body[: MAX_TEXT * 4]
    return index_terms(title, known[1] if body == known[0] else html_to_text(body))
