"""The learned half of sections: a linear model over words and character n-grams.

Why this shape: news sections are topical, so bag-of-words evidence carries most of the signal,
and a linear model over it trains in about a second on thousands of items, classifies tens of
thousands of items per second on one core, and can be explained term by term. Chinese text is
segmented with rjieba (the Rust port of jieba: same tokens, much faster); character unigrams and
bigrams catch what the segmenter splits badly (names, new words). Each group of features is
weighted by sublinear tf-idf and L2-normalized, as two scikit-learn vectorizers in a union would
be (``feedhub.core.features``), and a one-vs-rest linear SVM is trained with scikit-learn.
Its scores become probabilities through one softmax temperature fitted on cross-validated
scores of the training items, so that "confident" means the same thing to the categorizer
whatever the training set.

An optional :class:`TextEncoder` (a sentence encoder, see ``feedhub.core.semantic``) adds dense
features; it helps most with few training items but costs far more time per item. So a model with
an encoder is a cascade (``ModelParams.cascade_margin``): it also holds the weights of the sparse
model alone, which answer the items they separate by a wide margin, and only the rest pay for the
encoder (see ``feedhub.core.cascade``).

The model is persisted as a NumPy ``.npz`` (no pickle: loading bytes never runs code) with a JSON
header. Its ``version`` is a hash of the training data and parameters, so the same inputs give
the same version and the same weights.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from feedhub.core.cascade import SparseHead
from feedhub.core.features import (
    FloatArray,
    Vocabulary,
    sparse_products,
    text_terms,
    tfidf_rows,
)
from feedhub.errors import FeedhubError

__all__ = [
    "FORMAT",
    "ItemText",
    "Model",
    "ModelFormatError",
    "ModelParams",
    "TextEncoder",
]

FORMAT = "feedhub-section-model/1"
_DEFAULT_TEMPERATURE = 5.0
_TEMPERATURES = np.geomspace(0.25, 60.0, 48)


class ModelFormatError(FeedhubError, ValueError):
    """Bytes that are not a section model this code can read (corrupt, or another format)."""


@dataclass(frozen=True, slots=True)
class ItemText:
    """What the categorizer reads of an item: plain text, not HTML.

    ``source_section`` is the section of the channel the item came from (the prior); it may be
    a parent section, whose prior then covers its leaves.
    """

    title: str
    text: str = ""
    url: str | None = None
    feed_categories: tuple[str, ...] = ()
    source_section: str | None = None


class TextEncoder(Protocol):
    """A sentence encoder giving one vector per text. ``name`` is part of the model version."""

    @property
    def name(self) -> str: ...

    def encode(self, texts: Sequence[str]) -> FloatArray: ...


@dataclass(frozen=True, slots=True)
class ModelParams:
    """Training parameters; all of them are part of the model version."""

    c: float = 1.0  # SVM regularization: higher fits the training items more closely
    max_text_chars: int = 2000  # body text beyond this is ignored (time per item stays bounded)
    max_features: int = 300_000  # most frequent terms kept
    self_training: float = 0.0  # share of unlabelled items per predicted section added back
    dense_weight: float = 1.0  # scale of encoder features against the sparse ones
    seed: int = 0
    # With an encoder: an item whose two best sections by the sparse weights alone are at
    # least this many nats (log-odds) apart is answered by them and never encoded; the others
    # go to the full (sparse + dense) model. None: every item uses the full model.
    cascade_margin: float | None = 3.0


def _model_text(item: ItemText, max_chars: int) -> str:
    body = item.text[:max_chars] if item.text else ""
    return f"{item.title}\n{body}" if body else item.title


@dataclass(frozen=True, slots=True)
class Weights:
    vocab: Vocabulary
    idf: FloatArray  # (n_terms,)
    w: FloatArray  # (n_terms, n_sections)
    wd: FloatArray  # (encoder dim, n_sections); (0, n) without an encoder
    b: FloatArray  # (n_sections,)
    temperature: float
    extra: Mapping[str, Any] = field(default_factory=dict)
    sparse: SparseHead | None = None  # the cascade's first stage (models with an encoder)


class Model:
    """A trained section classifier. Immutable; build one with :meth:`train` or
    :meth:`from_bytes`."""

    def __init__(
        self,
        sections: Sequence[str],
        params: ModelParams,
        weights: Weights,
        version: str,
        encoder_name: str | None,
        encoder: TextEncoder | None = None,
    ) -> None:
        self._sections = tuple(sections)
        self._params = params
        self._wt = weights
        self._version = version
        self._encoder_name = encoder_name
        self._encoder = encoder
        head = weights.sparse if encoder_name is not None else None
        self._head = head
        # both stages' term weights side by side: one gather per item scores it for both
        self._w2 = np.hstack([head.w, weights.w]) if head is not None else weights.w

    @property
    def sections(self) -> tuple[str, ...]:
        return self._sections

    @property
    def version(self) -> str:
        return self._version

    @property
    def params(self) -> ModelParams:
        return self._params

    @property
    def encoder_name(self) -> str | None:
        return self._encoder_name

    @property
    def info(self) -> Mapping[str, Any]:
        """Facts about training (counts per section, temperature) for ``explain`` and logs."""
        info: dict[str, Any] = {"temperature": self._wt.temperature, **self._wt.extra}
        if self._head is not None:
            info["cascade"] = {
                "margin": self._head.margin,
                "sparse_temperature": self._head.temperature,
            }
        return info

    # --- training ---------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        examples: Sequence[tuple[ItemText, str]],
        sections: Sequence[str],
        *,
        params: ModelParams | None = None,
        unlabeled: Sequence[ItemText] = (),
        encoder: TextEncoder | None = None,
    ) -> Model:
        """Train on (item, leaf section) pairs: the items of channel sources and pinned items.

        ``unlabeled`` items (e.g. recent items of mixed feeds) are used only when
        ``params.self_training`` > 0: the first model labels them, and the share of them it is
        surest of, per section, is added to the training set for a second fit.
        Raises ValueError when a label is not in ``sections`` or fewer than two sections have
        examples.
        """
        from feedhub.core.classify_train import fit  # scikit-learn is imported only here

        params = params or ModelParams()
        known = set(sections)
        bad = sorted({label for _, label in examples if label not in known})
        if bad:
            raise ValueError(f"labels not among the sections: {', '.join(bad)}")
        ordered = sorted(
            ((_model_text(item, params.max_text_chars), label) for item, label in examples),
            key=lambda pair: hashlib.sha1(f"{pair[1]}\n{pair[0]}".encode()).digest(),
        )
        classes = [s for s in sections if any(label == s for _, label in ordered)]
        if len(classes) < 2:
            raise ValueError("training needs examples of at least two sections")
        pool = sorted({_model_text(u, params.max_text_chars) for u in unlabeled})
        if params.self_training <= 0:
            pool = []
        version = _version(ordered, pool, params, classes, encoder)
        weights = fit(ordered, pool, classes, params, encoder)
        return cls(classes, params, weights, version, encoder.name if encoder else None, encoder)

    # --- prediction -------------------------------------------------------------------------

    def decision_many(self, items: Sequence[ItemText]) -> FloatArray:
        """Raw linear scores of the full model, one row per item (before its temperature)."""
        return self._scores(items, cascade=False)[0]

    def _scores(
        self, items: Sequence[ItemText], *, cascade: bool = True
    ) -> tuple[FloatArray, list[float]]:
        """Raw scores of the stage that answers each item, and that stage's temperature."""
        if self._encoder_name is not None and self._encoder is None:
            raise ValueError(f"model needs the text encoder {self._encoder_name!r}")
        texts = [_model_text(it, self._params.max_text_chars) for it in items]
        k = len(self._sections)
        head = self._head if cascade else None
        both = sparse_products(tfidf_rows(texts, self._wt.vocab), self._w2)
        out = both[:, -k:] + self._wt.b
        temps = [self._wt.temperature] * len(texts)
        routed = np.arange(len(texts))
        if head is not None:
            sparse = both[:, :k] + head.b
            confident = head.confident(sparse)
            out[confident] = sparse[confident]
            for r in np.flatnonzero(confident).tolist():
                temps[r] = head.temperature
            routed = np.flatnonzero(~confident)
        if self._encoder is not None and len(routed):
            dense = self._encoder.encode([texts[r] for r in routed.tolist()]).astype(np.float32)
            out[routed] += (dense * np.float32(self._params.dense_weight)) @ self._wt.wd
        return out, temps

    def predict_proba_many(self, items: Sequence[ItemText]) -> list[dict[str, float]]:
        if not items:
            return []
        scores, temps = self._scores(items)
        out: list[dict[str, float]] = []
        for row, t in zip(scores.tolist(), temps, strict=True):  # plain floats beat numpy here
            peak = max(row)
            exps = [math.exp((z - peak) * t) for z in row]
            total = sum(exps)
            out.append({s: e / total for s, e in zip(self._sections, exps, strict=True)})
        return out

    def predict_proba(self, item: ItemText) -> dict[str, float]:
        """Probability of each trained section for the item's content alone (no prior)."""
        return self.predict_proba_many([item])[0]

    def top_terms(self, item: ItemText, section: str, n: int = 5) -> list[tuple[str, float]]:
        """The item's terms that pushed it most towards ``section``: for ``explain``."""
        k = self._sections.index(section)
        text = _model_text(item, self._params.max_text_chars)
        vocab = self._wt.vocab
        rows = tfidf_rows([text], vocab)
        w = self._wt.w
        if self._head is not None:  # the weights of the stage that answers this item
            row = sparse_products(rows, self._head.w) + self._head.b
            if self._head.confident(row)[0]:
                w = self._head.w
        words, chars = text_terms(text)
        name = {vocab.words[t]: t for t in words if t in vocab.words}
        name |= {vocab.chars[t]: t for t in chars if t in vocab.chars}
        contrib = [
            (name[j], v * float(w[j, k]))
            for j, v in zip(rows.cols.tolist(), rows.vals.tolist(), strict=True)
        ]
        contrib.sort(key=lambda tv: -tv[1])
        return [(t, round(v, 4)) for t, v in contrib[:n] if v > 0]

    def with_encoder(self, encoder: TextEncoder) -> Model:
        """The same model bound to ``encoder`` (needed after :meth:`from_bytes`)."""
        if encoder.name != self._encoder_name:
            raise ValueError(f"model was trained with {self._encoder_name!r}, not {encoder.name!r}")
        return Model(
            self._sections, self._params, self._wt, self._version, self._encoder_name, encoder
        )

    # --- persistence ------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        vocab = self._wt.vocab.terms()
        header = {
            "format": FORMAT,
            "version": self._version,
            "sections": list(self._sections),
            "params": asdict(self._params),
            "encoder": self._encoder_name,
            "temperature": self._wt.temperature,
            "extra": dict(self._wt.extra),
            "vocab": vocab,
        }
        arrays: dict[str, Any] = {
            "idf": self._wt.idf,
            "w": self._wt.w,
            "wd": self._wt.wd,
            "b": self._wt.b,
        }
        head = self._wt.sparse
        if head is not None:
            header["cascade"] = {"temperature": head.temperature, "margin": head.margin}
            arrays |= {"ws": head.w, "bs": head.b}
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            header=np.frombuffer(json.dumps(header, ensure_ascii=False).encode(), dtype=np.uint8),
            **arrays,
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, encoder: TextEncoder | None = None) -> Model:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                header = json.loads(z["header"].tobytes().decode())
                names = ("idf", "w", "wd", "b") + (("ws", "bs") if header.get("cascade") else ())
                arrays = {k: z[k].astype(np.float32) for k in names}
            if header.get("format") != FORMAT:
                raise ModelFormatError(f"not a {FORMAT} model: {header.get('format')!r}")
            cascade = header.get("cascade")
            head = (
                SparseHead(
                    arrays["ws"],
                    arrays["bs"],
                    float(cascade["temperature"]),
                    float(cascade["margin"]),
                )
                if cascade
                else None
            )
            weights = Weights(
                Vocabulary.of(header["vocab"], arrays["idf"]),
                arrays["idf"],
                arrays["w"],
                arrays["wd"],
                arrays["b"],
                float(header["temperature"]),
                header.get("extra", {}),
                head,
            )
            model = cls(
                header["sections"],
                ModelParams(**header["params"]),
                weights,
                header["version"],
                header["encoder"],
            )
        except ModelFormatError:
            raise
        except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
            raise ModelFormatError(f"unreadable section model: {exc}") from exc
        return model.with_encoder(encoder) if encoder is not None else model


def _version(
    ordered: Sequence[tuple[str, str]],
    pool: Sequence[str],
    params: ModelParams,
    classes: Sequence[str],
    encoder: TextEncoder | None,
) -> str:
    h = hashlib.sha256()
    kept = asdict(params)
    if encoder is None:  # the cascade needs an encoder: without one, versions are as they were
        del kept["cascade_margin"]
    head = {
        "format": FORMAT,
        "params": kept,
        "classes": list(classes),
        "encoder": encoder.name if encoder else None,
    }
    h.update(json.dumps(head, sort_keys=True, ensure_ascii=False).encode())
    for text, label in ordered:
        h.update(f"\x1e{label}\x1f{text}".encode())
    for text in pool:
        h.update(f"\x1d{text}".encode())
    return h.hexdigest()[:16]


def default_temperature() -> float:
    return _DEFAULT_TEMPERATURE


def temperature_grid() -> npt.NDArray[np.float64]:
    return _TEMPERATURES
