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

from functools import lru_cache

import numpy as np
import numpy.typing as npt

__all__ = [
    "CJK_FLAG",
    "U32",
    "band_keys",
    "jaccard",
    "oph_signature",
    "shingle_hashes",
    "sorted_unique",
    "token_hashes",
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


def _mix(x: U64) -> U64:
    """MurmurHash3's 64-bit finalizer: every input bit affects every output bit."""
    x = x ^ (x >> _S33)
    x = x * _M1
    x = x ^ (x >> _S33)
    x = x * _M2
    return x ^ (x >> _S33)


@lru_cache(maxsize=1)
def _word_table() -> npt.NDArray[np.bool_]:
    """For each BMP code point: is it part of a word (a letter or digit)? Built once."""
    every = np.arange(0x10000, dtype=np.uint32).view("<U1")
    return np.asarray(np.strings.isalnum(every), dtype=bool)


def token_hashes(text: str) -> U64:
    """One 64-bit hash per token (a CJK character or a word), computed over all tokens at
    once."""
    if not text:
        return np.zeros(0, dtype=np.uint64)
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    word = _word_table()[np.minimum(codes, 0xFFFF)]
    cjk = np.zeros(codes.size, dtype=bool)
    for low, high in _CJK_RANGES:
        cjk |= (codes >= low) & (codes <= high)
    # A token starts at a word character after a separator, at every CJK character and right
    # after one.
    boundary = cjk.copy()
    boundary[0] = True
    boundary[1:] |= ~word[:-1] | cjk[:-1]
    starts_mask = boundary & word
    starts = np.flatnonzero(starts_mask)
    if starts.size == 0:
        return np.zeros(0, dtype=np.uint64)
    index = np.arange(codes.size)
    token_start = np.maximum.accumulate(np.where(starts_mask, index, 0))
    position = np.minimum(index - token_start, _MAX_TOKEN_POSITIONS - 1)
    contrib = codes.astype(np.uint64) * _POSITION_WEIGHTS[position]
    contrib[~word] = 0
    # The top bit tells single CJK characters from words, so that comparisons can weigh a
    # replaced character (often a Traditional/Simplified variant) less than a replaced word.
    hashes = _mix(np.add.reduceat(contrib, starts)) & _LOW63
    return hashes | (cjk[starts].astype(np.uint64) << np.uint64(63))


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
    acc = np.zeros(n - width + 1, dtype=np.uint64)
    for slot in range(width):
        acc += tokens[slot : n - width + 1 + slot] * _SLOT_WEIGHTS[slot]
    hashes = (_mix(acc) >> _S32).astype(np.uint32)
    return sorted_unique(hashes)


def oph_signature(hashes: U32, bins: int) -> U32:
    """One-permutation MinHash of a sorted hash set: for each of ``bins`` equal ranges of the
    hash space, its smallest member (as an offset in the range); empty ranges borrow from the
    next non-empty one to the right, shifted by the distance so borrowed values stay distinct.
    All zeros for an empty set."""
    if hashes.size == 0:
        return np.zeros(bins, dtype=np.uint32)
    shift = 32 - (bins.bit_length() - 1)
    bounds = (np.arange(bins, dtype=np.uint64) << np.uint64(shift)).astype(np.uint32)
    first = np.searchsorted(hashes, bounds)
    clipped = np.minimum(first, hashes.size - 1)
    present = (first < hashes.size) & ((hashes[clipped] >> np.uint32(shift)) == np.arange(bins))
    values = hashes[clipped] & np.uint32((1 << shift) - 1)
    filled = np.flatnonzero(present)
    position = np.arange(bins)
    nearest = np.searchsorted(filled, position) % filled.size
    source = filled[nearest]
    distance = ((source - position) % bins).astype(np.uint32)
    return np.asarray(values[source] + distance * _GOLDEN, dtype=np.uint32)


def band_keys(signatures: U32, rows: int) -> U64:
    """LSH band keys: signature rows ``(n, bins)`` cut into bands of ``rows`` values, each band
    hashed with its index to one 64-bit key, shape ``(n, bins // rows)``. Two texts share a
    band key with probability about ``J ** rows``."""
    sig = np.atleast_2d(signatures)
    n, bins = sig.shape
    bands = bins // rows
    cut = sig[:, : bands * rows].reshape(n, bands, rows).astype(np.uint64)
    # Sums wrap modulo 2**64, so summing the weighted rows at once equals adding them in turn.
    acc = (cut * _BAND_WEIGHTS[0, :rows]).sum(axis=2, dtype=np.uint64) + _band_base(bands)
    return _mix(acc)


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
