"""Shingle sets of texts, and the two small summaries of them that near-duplicate search needs.

A text becomes a set of hashed shingles: runs of ``k`` consecutive tokens, where a token is one
CJK character or one word of other scripts, so Chinese is compared by character k-grams and
English by word k-grams without knowing the language. Punctuation and spacing never form tokens.

Two summaries are kept per text, both computed from the sorted set in one pass:

- a **bottom-k sketch**: the ``k`` smallest shingle hashes. For sets of at most ``k`` shingles
  it *is* the set, so their Jaccard similarity is exact; for larger ones it gives an unbiased
  estimate with error about ``sqrt(J(1-J)/k)``. This verifies candidates.
- a **one-permutation MinHash signature** (Li, Owen and Zhang 2012, with densification by
  rotation as in Shrivastava and Li 2014): the hash space is cut into ``bins`` ranges and each
  bin keeps its smallest member. Equal bins between two texts occur with probability equal to
  their Jaccard similarity, so banding the signature finds candidates (LSH). It costs one
  hash per shingle, where classic MinHash costs one per shingle and permutation.

All hashes are fixed functions of the text (no per-process seed), so signatures and sketches
can be stored and compared across runs and machines.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "CJK_FLAG",
    "U32",
    "band_keys",
    "band_sums",
    "jaccard",
    "oph_signature",
    "shingle_hashes",
    "sorted_unique",
    "sketches_many",
    "split_token_hashes",
    "token_hashes",
    "token_hashes_many",
]

U32 = npt.NDArray[np.uint32]
U64 = npt.NDArray[np.uint64]

# Kana, CJK ideographs and Hangul: scripts written without spaces, one token per character.
_CJK_RANGES = (
    (0x3040, 0x30FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0xAC00, 0xD7AF),
)

_RNG = np.random.default_rng(0x5EED_F00D)
_MAX_TOKEN_POSITIONS = 64
# Odd 64-bit multipliers: one per character position within a token, one per shingle slot.
_POSITION_WEIGHTS = _RNG.integers(1, 2**63, size=_MAX_TOKEN_POSITIONS, dtype=np.uint64) * 2 + 1
_SLOT_WEIGHTS = _RNG.integers(1, 2**63, size=16, dtype=np.uint64) * 2 + 1
_BAND_WEIGHTS = _RNG.integers(1, 2**63, size=(2, 64), dtype=np.uint64) * 2 + 1
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)
_S32 = np.uint64(32)
_GOLDEN = np.uint32(0x9E3779B1)
_LOW63 = np.uint64(2**63 - 1)
CJK_FLAG = 2**63  # set in the hash of a token that is one CJK character
_EMPTY32: U32 = np.zeros(0, dtype=np.uint32)
_EMPTY64: U64 = np.zeros(0, dtype=np.uint64)
_EMPTY_INTP: npt.NDArray[np.intp] = np.zeros(0, dtype=np.intp)
_LOW32 = np.uint64(0xFFFFFFFF)
for _empty in (_EMPTY32, _EMPTY64, _EMPTY_INTP):
    _empty.flags.writeable = False


def _mix(x: U64) -> U64:
    """MurmurHash3's 64-bit finalizer: every input bit affects every output bit."""
    x = x ^ (x >> _S33)
    x *= _M1
    x ^= x >> _S33
    x *= _M2
    x ^= x >> _S33
    return x


_WORD = 1  # a letter or digit: part of a word
_START = 2  # a word character that starts a token by itself: a CJK one
_BREAK = 4  # ends the token before the next character: not a word character, or a CJK one
# The top bit of a token's hash, indexed by its first character's flags.
_TOP_BIT = np.array([CJK_FLAG if flags & _START else 0 for flags in range(8)], dtype=np.uint64)


@lru_cache(maxsize=1)
def _flag_table() -> npt.NDArray[np.uint8]:
    """The flags above for every code point, built once: one lookup per character then
    replaces a comparison per script range and flag. Characters beyond the BMP are never word
    characters nor CJK (as if they were U+FFFF)."""
    every = np.arange(0x10000, dtype=np.uint32).view("<U1")
    word = np.asarray(np.strings.isalnum(every), dtype=bool)
    cjk = np.zeros(0x10000, dtype=bool)
    for low, high in _CJK_RANGES:
        cjk[low : high + 1] = True
    table = np.zeros(0x110000, dtype=np.uint8)
    table[:0x10000] = word * _WORD | (cjk & word) * _START | (~word | cjk) * _BREAK
    table[0x10000:] = table[0xFFFF]
    return table


_index_cache: list[npt.NDArray[np.intp]] = [np.arange(4096, dtype=np.intp)]


def _index(n: int) -> npt.NDArray[np.intp]:
    """``np.arange(n)`` as a view of one shared array, grown when a longer text comes."""
    index = _index_cache[0]
    if index.size < n:
        index = _index_cache[0] = np.arange(max(n, 2 * index.size), dtype=np.intp)
    return index[:n]


def token_hashes(text: str) -> U64:
    """One 64-bit hash per token (a CJK character or a word), computed over all tokens at
    once."""
    return split_token_hashes(text, 0)[0]


def split_token_hashes(text: str, cut: int) -> tuple[U64, int]:
    """``token_hashes(text)`` and how many of them start before character ``cut``: for a text
    made of a head, a separator and a tail, the head's tokens are exactly those (a token never
    spans a non-word character), so the head needs no pass of its own."""
    if not text:
        return np.zeros(0, dtype=np.uint64), 0
    hashes, starts = _hash_tokens(np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32))
    if starts.size == 0:
        return np.zeros(0, dtype=np.uint64), 0
    head_count = int(np.searchsorted(starts, cut)) if cut > 0 else 0
    return hashes, head_count


def token_hashes_many(
    texts: Sequence[str], cuts: Sequence[int]
) -> tuple[U64, npt.NDArray[np.intp], list[int]]:
    """``split_token_hashes`` of many texts in one pass: all their token hashes in order, the
    index where each text's tokens begin (and, last, their total), and each text's head count.

    NumPy spends microseconds per call whatever the size, more than the arithmetic on one
    item's text, so the texts are hashed joined by newlines: no token spans a newline (it is
    no word character), and after one a token starts exactly as at the start of a text."""
    if not texts:
        return np.zeros(0, dtype=np.uint64), np.zeros(1, dtype=np.intp), []
    offsets = np.zeros(len(texts) + 1, dtype=np.intp)
    np.cumsum([len(text) + 1 for text in texts], out=offsets[1:])
    codes = np.frombuffer("\n".join(texts).encode("utf-32-le"), dtype=np.uint32)
    hashes, starts = _hash_tokens(codes) if codes.size else (_EMPTY64, _EMPTY_INTP)
    bounds = np.searchsorted(starts, offsets)
    cut = np.asarray(cuts, dtype=np.intp)
    heads = np.searchsorted(starts, np.minimum(offsets[:-1] + cut, offsets[1:]))
    heads -= bounds[:-1]
    heads[cut <= 0] = 0
    return hashes, bounds, heads.tolist()


def _hash_tokens(codes: U32) -> tuple[U64, npt.NDArray[np.intp]]:
    """The hash of every token of a non-empty text given as code points, and where each
    token starts."""
    flags = _flag_table()[codes]
    # A token starts at a word character that is CJK, follows a separator or a CJK character,
    # or opens the text.
    starts_mask = np.empty(codes.size, dtype=np.uint8)
    starts_mask[0] = flags[0] & _WORD
    if codes.size > 1:
        head = flags[:-1] >> 2  # bit 0: the character before has _BREAK (4 >> 2 == _WORD)
        head &= flags[1:]  # ... and this one is a word character
        head |= flags[1:] >> 1  # bit 0: or this one has _START (2 >> 1 == _WORD)
        head &= _WORD
        starts_mask[1:] = head
    is_start = starts_mask.view(np.bool_)
    starts = np.flatnonzero(is_start)
    if starts.size == 0:
        return _EMPTY64, starts
    index = _index(codes.size)
    token_start = np.where(is_start, index, 0)
    np.maximum.accumulate(token_start, out=token_start)
    position = index - token_start
    np.minimum(position, _MAX_TOKEN_POSITIONS - 1, out=position)
    contrib = codes * _POSITION_WEIGHTS[position]  # uint64, as the weights are
    contrib *= flags & _WORD  # separators add nothing to the token before them
    # The top bit tells single CJK characters from words, so that comparisons can weigh a
    # replaced character (often a Traditional/Simplified variant) less than a replaced word.
    # Each token's sum as a difference of running sums (both wrap modulo 2**64, so this is
    # what np.add.reduceat gives, which is slow for the many one-character tokens).
    running = np.zeros(codes.size + 1, dtype=np.uint64)
    np.cumsum(contrib, out=running[1:])
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:]
    ends[-1] = codes.size
    hashes = _mix(running[ends] - running[starts])
    hashes &= _LOW63
    hashes |= _TOP_BIT[flags[starts]]
    return hashes, starts


def sorted_unique(values: U32) -> U32:
    """Sorted distinct values (``np.unique`` hashes first, which is slower for this)."""
    ordered = np.sort(values)
    if ordered.size < 2:
        return ordered
    keep = np.empty(ordered.size, dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def shingle_hashes(tokens: U64, k: int) -> U32:
    """The sorted, distinct 32-bit hashes of the ``k``-token shingles of a token sequence.

    A text shorter than ``k`` tokens is one shingle of all its tokens; an empty one has none.
    """
    n = tokens.size
    if n == 0:
        return _EMPTY32
    width = min(k, n)
    m = n - width + 1
    acc = tokens[:m] * _SLOT_WEIGHTS[0]  # sums wrap modulo 2**64, like adding to zeros
    for slot in range(1, width):
        acc += tokens[slot : m + slot] * _SLOT_WEIGHTS[slot]
    hashes = (_mix(acc) >> _S32).astype(np.uint32)
    return sorted_unique(hashes)


def oph_signature(hashes: U32, bins: int) -> U32:
    """One-permutation MinHash of a sorted hash set: for each of ``bins`` equal ranges of the
    hash space, its smallest member (as an offset in the range); empty ranges borrow from the
    next non-empty one to the right, shifted by the distance so borrowed values stay distinct.
    All zeros for an empty set."""
    if hashes.size == 0:
        return np.zeros(bins, dtype=np.uint32)
    shift, low_bits, bounds, position = _oph_constants(bins)
    first = np.searchsorted(hashes, bounds)
    picked = hashes[np.minimum(first, hashes.size - 1)]
    present = (picked >> shift) == position
    present &= first < hashes.size
    values = picked & low_bits
    if present.all():
        return values  # no empty range: nothing borrowed, every distance is zero
    filled = np.flatnonzero(present)
    nearest = np.searchsorted(filled, position) % filled.size
    source = filled[nearest]
    distance = ((source - position) % bins).astype(np.uint32)
    return np.asarray(values[source] + distance * _GOLDEN, dtype=np.uint32)


@lru_cache(maxsize=8)
def _oph_constants(bins: int) -> tuple[np.uint32, np.uint32, U32, npt.NDArray[np.intp]]:
    """The bit shift of a bin, the mask of a value in it, each bin's lowest hash and index."""
    shift = 32 - (bins.bit_length() - 1)
    bounds = (np.arange(bins, dtype=np.uint64) << np.uint64(shift)).astype(np.uint32)
    position = np.arange(bins, dtype=np.intp)
    bounds.flags.writeable = position.flags.writeable = False
    return np.uint32(shift), np.uint32((1 << shift) - 1), bounds, position


def sketches_many(
    tokens: U64, bounds: npt.NDArray[np.intp], k: int, bins: int
) -> tuple[U32, npt.NDArray[np.intp], U32]:
    """``shingle_hashes`` and ``oph_signature`` of many texts at once, from their tokens as
    ``token_hashes_many`` gives them: all the shingle hash sets concatenated, the index where
    each text's set begins (and, last, their total), and the signatures as rows.

    Each hash is keyed with its text's number in the top 32 bits, so that one sort puts every
    set in order, text after text, for all of them at once."""
    count = bounds.size - 1
    sizes = np.diff(bounds)
    owner = np.repeat(np.arange(count, dtype=np.uint64), sizes)
    keys = [_EMPTY64]
    if tokens.size >= k:
        m = tokens.size - k + 1
        acc = tokens[:m] * _SLOT_WEIGHTS[0]  # sums wrap modulo 2**64, like adding to zeros
        for slot in range(1, k):
            acc += tokens[slot : m + slot] * _SLOT_WEIGHTS[slot]
        inside = owner[:m] == owner[k - 1 :]  # the shingle's first and last token in one text
        keys.append(owner[:m][inside] << _S32 | _mix(acc[inside]) >> _S32)
    for text in np.flatnonzero((sizes > 0) & (sizes < k)).tolist():
        # A text shorter than k tokens is one shingle of all of them.
        single = shingle_hashes(tokens[bounds[text] : bounds[text + 1]], k)
        keys.append(np.uint64(text) << _S32 | single.astype(np.uint64))
    ordered = np.sort(np.concatenate(keys))
    if ordered.size > 1:
        keep = np.empty(ordered.size, dtype=bool)
        keep[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
        ordered = ordered[keep]
    texts = np.arange(count + 1, dtype=np.uint64) << _S32
    set_bounds = np.searchsorted(ordered, texts)
    hashes = (ordered & _LOW32).astype(np.uint32)
    return hashes, set_bounds, _oph_many(ordered, set_bounds, bins)


def _oph_many(keys: U64, set_bounds: npt.NDArray[np.intp], bins: int) -> U32:
    """``oph_signature`` of every set in ``keys`` (sorted, keyed by text as in
    ``sketches_many``), one row each: the same picks, and the same borrowing for empty bins,
    written for all rows at once.

    A key shifted right by a bin's width is its text's number times ``bins`` plus its bin, so
    the first key of each run of equal shifted keys is the smallest member of that bin."""
    count = set_bounds.size - 1
    signatures = np.zeros((count, bins), dtype=np.uint32)
    if keys.size == 0:
        return signatures
    shift, low_bits, _, position = _oph_constants(bins)
    cells = keys >> np.uint64(shift)
    first = np.empty(keys.size, dtype=bool)
    first[0] = True
    np.not_equal(cells[1:], cells[:-1], out=first[1:])
    cells = cells[first].astype(np.intp)
    present = np.zeros((count, bins), dtype=bool)
    present.ravel()[cells] = True
    values = np.zeros((count, bins), dtype=np.uint32)
    values.ravel()[cells] = keys[first].astype(np.uint32) & low_bits
    filled = present.any(axis=1)  # False only for an empty set: all zeros
    if present[filled].all():
        return values
    # The nearest filled bin at or after each bin, cyclically: the smallest filled position
    # in the row written twice, from each position onwards.
    far = 2 * bins
    twice = np.where(np.concatenate((present, present), axis=1), np.arange(far), far)
    nearest = np.minimum.accumulate(twice[:, ::-1], axis=1)[:, : bins - 1 : -1]
    rows = np.flatnonzero(filled)
    nearest = nearest[rows]
    source = nearest % bins
    distance = (nearest - position).astype(np.uint32)
    signatures[rows] = values[rows[:, None], source] + distance * _GOLDEN
    return signatures


def band_keys(signatures: U32, rows: int) -> U64:
    """LSH band keys: signature rows ``(n, bins)`` cut into bands of ``rows`` values, each band
    hashed with its index to one 64-bit key, shape ``(n, bins // rows)``. Two texts share a
    band key with probability about ``J ** rows``."""
    return _mix(band_sums(np.atleast_2d(signatures), rows))


def band_sums(signatures: npt.NDArray[np.unsignedinteger[Any]], rows: int) -> U64:
    """``band_keys`` without its final mix, of one signature (shape ``(bins,)``) or of
    signature rows (shape ``(n, bins)``). The mix is a bijection of 64-bit integers, so two
    sums are equal exactly when the keys are: a table that only tests keys for equality (the
    story index's) can skip it, half the cost of the keys."""
    bands = signatures.shape[-1] // rows
    cut = signatures[..., : bands * rows].astype(np.uint64)
    cut = cut.reshape(*signatures.shape[:-1], bands, rows)
    # Integer products and sums wrap modulo 2**64, so the weighted rows may be summed at once.
    sums: U64 = cut @ _BAND_WEIGHTS[0, :rows]
    sums += _band_base(bands)
    return sums


@lru_cache(maxsize=8)
def _band_base(bands: int) -> U64:
    """Each band's own offset, so equal rows in different bands give different keys."""
    return (np.arange(bands, dtype=np.uint64) + np.uint64(1)) * _BAND_WEIGHTS[1, :bands]


def jaccard(a: U32, size_a: int, b: U32, size_b: int) -> tuple[float, float]:
    """Jaccard similarity and containment (the share of the smaller set found in the larger)
    from two bottom-k sketches of sets of ``size_a`` and ``size_b`` shingles.

    Exact when neither sketch was truncated; otherwise estimated over the ``k`` smallest
    hashes of the union, which both sketches fully know."""
    if size_a == 0 or size_b == 0 or a.size == 0 or b.size == 0:
        return 0.0, 0.0
    # Both are sorted: a binary search per element finds the common ones.
    position = np.minimum(np.searchsorted(b, a), b.size - 1)
    common = a[b[position] == a]
    if size_a <= a.size and size_b <= b.size:
        shared = common.size
        similarity = shared / (size_a + size_b - shared)
    else:
        k = min(s.size for s, n in ((a, size_a), (b, size_b)) if n > s.size)
        union = sorted_unique(np.concatenate((a, b)))[:k]
        shared_in_union = int(np.count_nonzero(common <= union[-1]))
        similarity = shared_in_union / union.size
    intersection = similarity * (size_a + size_b) / (1.0 + similarity)
    return similarity, min(1.0, intersection / min(size_a, size_b))
