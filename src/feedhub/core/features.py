"""Features of the section classifier: words and character n-grams of a text, weighted.

Chinese text is segmented with rjieba (the Rust port of jieba: same tokens, much faster);
character unigrams and bigrams catch what the segmenter splits badly (names, new words). Each
group of features is weighted by sublinear tf-idf and L2-normalized, as two scikit-learn
vectorizers in a union would be. Rows are built for batches in NumPy (the pipeline files 500
items at a time) and term by term in plain Python for a few items, to the same bits, so an
item scores the same alone or in a batch. Nothing here imports scikit-learn or SciPy.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import numpy.typing as npt
import rjieba

__all__ = [
    "FloatArray",
    "IntArray",
    "Rows",
    "Vocabulary",
    "build_vocab",
    "sparse_products",
    "text_terms",
    "tfidf_rows",
    "vectorize",
]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
_WORDISH = re.compile(r"\w")
_SPACE = re.compile(r"\s+")


def text_terms(text: str) -> tuple[list[str], list[str]]:
    """Words, and character unigrams and bigrams (spaces removed), of normalized text."""
    norm = unicodedata.normalize("NFKC", text).lower()
    words = [w for w in rjieba.cut(norm) if _WORDISH.search(w)]
    compact = _SPACE.sub("", norm)
    chars = list(compact)
    chars += map(str.__add__, compact, compact[1:])
    return words, chars


Index = Mapping[str, int]  # term -> column


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Columns of the model: words and character n-grams apart, and each column's idf."""

    words: Index
    chars: Index
    idf: npt.NDArray[np.float64]  # (size,): the stored float32 values, widened once

    @property
    def size(self) -> int:
        return len(self.idf)

    @classmethod
    def of(cls, terms: Sequence[str], idf: FloatArray) -> Vocabulary:
        """From prefixed terms (``w:`` word, ``c:`` characters) in column order."""
        words: dict[str, int] = {}
        chars: dict[str, int] = {}
        for j, term in enumerate(terms):
            (words if term.startswith("w:") else chars)[term[2:]] = j
        return cls(words, chars, np.asarray(idf, dtype=np.float32).astype(np.float64))

    def terms(self) -> list[str]:
        out = [""] * self.size
        for prefix, index in (("w:", self.words), ("c:", self.chars)):
            for term, j in index.items():
                out[j] = prefix + term
        return out


@dataclass(frozen=True, slots=True)
class Rows:
    """Sparse rows of texts (CSR parts): row ``i`` is ``cols/vals[indptr[i]:indptr[i+1]]``."""

    indptr: IntArray
    cols: IntArray
    vals: npt.NDArray[np.float64]


# 1 + ln(n) for term counts n: one table for both ways of building rows, so that they agree
# to the last bit (NumPy's and the C library's logarithms may differ in the last place).
_SUBLINEAR = 1.0 + np.log(np.arange(1, 4097, dtype=np.float64))
_SUBLINEAR_LIST: list[float] = _SUBLINEAR.tolist()
_SMALL = 8  # batches up to this size are vectorized in plain Python: NumPy's per-call cost


def _sublinear(counts: IntArray) -> npt.NDArray[np.float64]:
    if len(counts) and counts.max() > len(_SUBLINEAR):
        return np.array([_sublinear_one(int(n)) for n in counts.tolist()], dtype=np.float64)
    return _SUBLINEAR[counts - 1]


def _sublinear_one(n: int) -> float:
    if n <= len(_SUBLINEAR_LIST):
        return _SUBLINEAR_LIST[n - 1]
    return 1.0 + math.log(n)


def tfidf_rows(texts: Sequence[str], vocab: Vocabulary) -> Rows:
    """Sublinear tf-idf of each group of terms (words, characters), each group L2-normalized,
    as two scikit-learn vectorizers in a union would give. Within a row, word columns come
    first, then character columns, each in column order. Large batches are done at once in
    NumPy, small ones term by term; both give the same bits, so an item scores the same alone
    or in a batch."""
    if len(texts) <= _SMALL:
        return _rows_small(texts, vocab)
    wget, cget = vocab.words.get, vocab.chars.get
    found: list[int] = []  # column per term, -1 when unknown: each text's words, then chars
    lens: list[int] = []  # terms per (text, group), in that order
    for text in texts:
        words, chars = text_terms(text)
        found += map(wget, words, repeat(-1))
        found += map(cget, chars, repeat(-1))
        lens += (len(words), len(chars))
    size = vocab.size
    cols = np.fromiter(found, dtype=np.int64, count=len(found))
    groups = np.repeat(np.arange(len(lens), dtype=np.int64), lens)  # text * 2 + group
    known = cols >= 0
    keys, counts = np.unique(groups[known] * size + cols[known], return_counts=True)
    groups, cols = np.divmod(keys, size)
    vals = vocab.idf[cols] * _sublinear(counts)
    # bincount adds each group's squares in order, as the loop in _rows_small does
    norms = np.sqrt(np.bincount(groups, weights=vals * vals, minlength=len(lens)))
    vals /= norms[groups]
    indptr = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.bincount(groups >> 1, minlength=len(texts)), out=indptr[1:])
    return Rows(indptr, cols, vals)


def _rows_small(texts: Sequence[str], vocab: Vocabulary) -> Rows:
    """:func:`tfidf_rows` term by term, for a few texts (one item filed alone)."""
    all_cols: list[int] = []
    all_vals: list[float] = []
    indptr = [0]
    for text in texts:
        for terms, index in zip(text_terms(text), (vocab.words, vocab.chars), strict=True):
            counts = Counter(j for j in map(index.get, terms) if j is not None)
            cols = sorted(counts)
            if not cols:
                continue
            vals = [
                idf * _sublinear_one(counts[j])
                for idf, j in zip(vocab.idf[cols].tolist(), cols, strict=True)
            ]
            total = 0.0
            for v in vals:
                total += v * v
            norm = math.sqrt(total)
            all_cols += cols
            all_vals += [v / norm for v in vals]
        indptr.append(len(all_cols))
    return Rows(
        np.array(indptr, dtype=np.int64),
        np.array(all_cols, dtype=np.int64),
        np.array(all_vals, dtype=np.float64),
    )


def sparse_products(rows: Rows, w: FloatArray) -> FloatArray:
    """``rows @ w`` for dense ``w`` without SciPy (classifying never imports it)."""
    out = np.zeros((len(rows.indptr) - 1, w.shape[1]), dtype=np.float32)
    starts = rows.indptr[:-1]
    nonempty = np.flatnonzero(rows.indptr[1:] > starts)
    if len(nonempty):
        terms = w[rows.cols] * rows.vals.astype(np.float32)[:, None]
        out[nonempty] = np.add.reduceat(terms, starts[nonempty], axis=0)
    return out


def build_vocab(texts: Sequence[str], max_features: int) -> tuple[Vocabulary, FloatArray]:
    """Terms of the training texts, most frequent first, with smoothed idf (as scikit-learn)."""
    df: Counter[str] = Counter()
    for text in texts:
        words, chars = text_terms(text)
        df.update({"w:" + w for w in words})
        df.update({"c:" + c for c in chars})
    kept = sorted(df.items(), key=lambda tc: (-tc[1], tc[0]))[:max_features]
    n = len(texts)
    idf = np.array([math.log((1 + n) / (1 + c)) + 1.0 for _, c in kept], dtype=np.float32)
    return Vocabulary.of([t for t, _ in kept], idf), idf


def vectorize(texts: Sequence[str], vocab: Vocabulary) -> Rows:
    """Sparse rows of the texts; shared by training and prediction."""
    return tfidf_rows(texts, vocab)
