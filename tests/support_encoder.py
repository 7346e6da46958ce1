"""A stand-in sentence encoder for tests: hashed characters, no model to load."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np


class CountingEncoder:
    """Counts each text's characters into 16 hashed buckets (scaled to unit length unless
    ``normalize`` is off) and records every text it was asked to encode in ``seen``."""

    def __init__(self, name: str = "hash-16", *, normalize: bool = True) -> None:
        self._name = name
        self._normalize = normalize
        self.seen: list[str] = []

    @property
    def name(self) -> str:
        return self._name

    def encode(self, texts: Sequence[str]) -> np.ndarray:  # type: ignore[type-arg]
        self.seen += texts
        out = np.zeros((len(texts), 16), dtype=np.float32)
        for i, text in enumerate(texts):
            for ch in text:
                out[i, zlib.crc32(ch.encode()) % 16] += 1.0
            if self._normalize:
                out[i] /= max(float(np.linalg.norm(out[i])), 1e-9)
        return out
