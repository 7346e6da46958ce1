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

from feedhub.core.textnorm import html_to_text

__all__ = ["MAX_TEXT", "index_terms", "item_terms", "query_phrases"]

MAX_TEXT = 600  # body characters indexed after the title: the lede says what a story is about
_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_HAN}]+|[^\W{_HAN}_]+")
_IS_HAN = re.compile(rf"[{_HAN}]")


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
    norm = unicodedata.normalize("NFKC", f"{title}\n{text[:MAX_TEXT]}").casefold()
    parts = []
    for run in _TOKEN.findall(norm):
        if len(run) > 1 and _IS_HAN.match(run):
            parts.append(" ".join(map(str.__add__, run, run[1:])))  # the character pairs
        else:
            parts.append(run)
    return " ".join(parts)


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


def item_terms(title: str, summary: str | None, content: str | None) -> str:
    """An item's terms from its stored fields (summary and content are HTML)."""
    body = "\n".join(part for part in (summary, content) if part)
    return index_terms(title, html_to_text(body[: MAX_TEXT * 4]) if body else "")
