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
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from feedhub.core.textnorm import casefold, html_to_text, nfkc

__all__ = ["MAX_TEXT", "index_terms", "item_terms", "items_terms", "query_phrases"]

MAX_TEXT = 300  # body characters indexed after the title: the lede says what a story is about
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
    return casefold(nfkc(text))


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
    if codes.size == 0:
        return ""
    out = _term_slots(codes)[0]
    return out[:-1].tobytes().decode("utf-32-le") if out.size else ""


def _terms_many(norms: Sequence[str]) -> list[str]:
    """``_terms`` of each folded text, in one pass over all of them joined by newlines: a
    newline is no word character, so the terms on either side of it are those of each text
    alone, and it writes no slot."""
    if not norms:
        return []
    joined = "\n".join(norms)
    codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if codes.size == 0:
        return [""] * len(norms)
    out, used = _term_slots(codes)
    # Where each text's slots begin among those in use (texts start after each newline): the
    # slots in use before its first character's three.
    written = np.zeros(used.size + 1, dtype=np.intp)
    np.cumsum(used.ravel(), out=written[1:])
    starts = np.zeros(len(norms) + 1, dtype=np.intp)
    np.cumsum([len(norm) + 1 for norm in norms], out=starts[1:])
    edges = written[3 * np.minimum(starts, codes.size)].tolist()
    text = out.tobytes().decode("utf-32-le")
    return [text[a : b - 1] if b > a else "" for a, b in zip(edges, edges[1:], strict=False)]


def _term_slots(
    codes: npt.NDArray[np.uint32],
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.bool_]]:
    """The slots in use, in order, of a non-empty text given as code points (see ``_terms``),
    and which of each character's three slots are in use."""
    n = codes.size
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
    return slots[used], used


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
    return _terms(_fold(_index_text(title, summary, content, known)))


def _index_text(
    title: str, summary: str | None, content: str | None, known: tuple[str, str]
) -> str:
    """What ``index_terms`` folds for an item: its title and the start of its body's text."""
    body = "\n".join(part for part in (summary, content) if part)
    if not body:
        return f"{title}\n"
    body = body[: MAX_TEXT * 4]
    text = known[1] if body == known[0] else html_to_text(body)
    return f"{title}\n{text[:MAX_TEXT]}"


def items_terms(
    items: Sequence[tuple[str, str | None, str | None]],
    known: Sequence[tuple[str, str]] | None = None,
) -> list[str]:
    """``item_terms`` of each ``(title, summary, content)`` (with ``known[n]`` as its
    ``known``), the very same strings, made in one array pass for all of them."""
    norms = []
    for n, (title, summary, content) in enumerate(items):
        norms.append(_fold(_index_text(title, summary, content, known[n] if known else ("", ""))))
    return _terms_many(norms)
