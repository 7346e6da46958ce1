"""Fitting a section model: the only place scikit-learn and SciPy are imported.

Kept apart from ``classify`` so that classifying items (the hot path, and every process that
only loads a stored model) never imports them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse  # type: ignore[import-untyped]
from sklearn.exceptions import ConvergenceWarning  # type: ignore[import-untyped]
from sklearn.model_selection import StratifiedKFold  # type: ignore[import-untyped]
from sklearn.svm import LinearSVC  # type: ignore[import-untyped]

from feedhub.core.cascade import SparseHead, routed_share
from feedhub.core.classify import (
    ModelParams,
    TextEncoder,
    Weights,
    default_temperature,
    temperature_grid,
)
from feedhub.core.features import Vocabulary, build_vocab, vectorize

__all__ = ["fit"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def fit(
    ordered: Sequence[tuple[str, str]],
    pool: Sequence[str],
    classes: Sequence[str],
    params: ModelParams,
    encoder: TextEncoder | None,
) -> Weights:
    """Weights of a one-vs-rest linear SVM over ``ordered`` (text, label) pairs.

    ``pool``: unlabelled texts for one round of self-training (empty: none). With an encoder and
    a ``params.cascade_margin``, the sparse features alone are fitted too, as the cascade's
    first stage: the same weights a model without the encoder would have.
    """
    texts = [t for t, _ in ordered]
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[label] for _, label in ordered], dtype=np.int64)
    vocab, idf = build_vocab(texts, params.max_features)
    xs = _matrix(texts, vocab)
    ps = _matrix(pool, vocab) if pool else None
    head: SparseHead | None = None
    routed: float | None = None
    if encoder is not None:
        x = _with_dense(xs, texts, encoder, params)
        xp = _with_dense(ps, pool, encoder, params) if ps is not None else None
        if params.cascade_margin is not None:
            sw, sb, st, held_out, _ = _head(xs, ps, y, len(classes), params)
            head = SparseHead(_f32(sw), _f32(sb), st, params.cascade_margin)
            routed = routed_share(held_out, head)
    else:
        x, xp = xs, ps
    w, b, temperature, _, n_pseudo = _head(x, xp, y, len(classes), params)
    n_terms = vocab.size
    counts = {c: int((y == i).sum()) for c, i in index.items()}
    extra: dict[str, Any] = {"examples": counts, "pseudo_labelled": n_pseudo, "terms": n_terms}
    if routed is not None:
        extra["held_out_routed"] = round(routed, 4)
    return Weights(
        vocab=vocab,
        idf=idf,
        w=_f32(w[:n_terms]),
        wd=_f32(w[n_terms:]),
        b=_f32(b),
        temperature=temperature,
        extra=extra,
        sparse=head,
    )


def _head(
    x: Any, xp: Any, y: IntArray, n_classes: int, params: ModelParams
) -> tuple[FloatArray, FloatArray, float, FloatArray, int]:
    """Weights, biases, temperature, held-out scores and pseudo-label count of one model."""
    temperature, held_out = _calibrate(x, y, n_classes, params)
    w, b = _fit_svm(x, y, n_classes, params)
    n_pseudo = 0
    if xp is not None:
        scores = np.asarray(xp @ w) + b
        keep, labels = _confident(scores, params.self_training)
        n_pseudo = len(keep)
        if n_pseudo:
            x2 = sparse.vstack([x, xp[keep]]).tocsr()
            w, b = _fit_svm(x2, np.concatenate([y, labels]), n_classes, params)
    return w, b, temperature, held_out, n_pseudo


def _f32(a: FloatArray) -> npt.NDArray[np.float32]:
    return np.ascontiguousarray(a, dtype=np.float32)


def _matrix(texts: Sequence[str], vocab: Vocabulary) -> Any:
    rows = vectorize(texts, vocab)
    return sparse.csr_matrix((rows.vals, rows.cols, rows.indptr), shape=(len(texts), vocab.size))


def _with_dense(x: Any, texts: Sequence[str], encoder: TextEncoder, params: ModelParams) -> Any:
    dense = np.asarray(encoder.encode(texts), dtype=np.float64) * params.dense_weight
    return sparse.hstack([x, sparse.csr_matrix(dense)]).tocsr()


def _fit_svm(
    x: Any, y: IntArray, n_classes: int, params: ModelParams
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(features x classes) weights and biases; a two-class SVM is spread over two columns."""
    clf = LinearSVC(C=params.c, random_state=params.seed, max_iter=5000)
    with warnings.catch_warnings():
        # liblinear's iteration cap is reached on some tiny training sets; the weights are
        # still usable and the calibration below measures how good they are.
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    coef = np.asarray(clf.coef_, dtype=np.float64)
    intercept = np.asarray(clf.intercept_, dtype=np.float64)
    present = [int(c) for c in clf.classes_]
    w = np.zeros((x.shape[1], n_classes))
    b = np.full(n_classes, -1e3)  # a section without training items never wins on content
    if len(present) == 2:
        w[:, present[0]], w[:, present[1]] = -coef[0] / 2, coef[0] / 2
        b[present[0]], b[present[1]] = -intercept[0] / 2, intercept[0] / 2
    else:
        for k, c in enumerate(present):
            w[:, c], b[c] = coef[k], intercept[k]
    return w, b


def _calibrate(
    x: Any, y: IntArray, n_classes: int, params: ModelParams
) -> tuple[float, FloatArray]:
    """Softmax temperature minimizing the log loss of out-of-fold scores, and those scores
    (no rows when there are too few items to hold any out)."""
    smallest = int(np.bincount(y, minlength=n_classes)[np.unique(y)].min())
    folds = min(3, smallest)
    none = np.zeros((0, n_classes))
    if folds < 2:
        return default_temperature(), none
    scores = np.zeros((len(y), n_classes))
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=params.seed)
    for train, test in split.split(np.zeros(len(y)), y):
        if len(np.unique(y[train])) < 2:
            return default_temperature(), none
        w, b = _fit_svm(x[train], y[train], n_classes, params)
        scores[test] = np.asarray(x[test] @ w) + b
    best, best_loss = default_temperature(), float("inf")
    for t in temperature_grid():
        z = scores * t
        z -= z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = -float(log_p[np.arange(len(y)), y].mean())
        if loss < best_loss:
            best, best_loss = float(t), loss
    return best, scores


def _confident(scores: npt.NDArray[np.float64], share: float) -> tuple[IntArray, IntArray]:
    """Per predicted section, the ``share`` of items with the widest margin, and their labels."""
    pred = scores.argmax(axis=1)
    top2 = np.sort(scores, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    keep: list[int] = []
    for c in np.unique(pred):
        members = np.flatnonzero(pred == c)
        n = int(len(members) * min(share, 1.0))
        keep += members[np.argsort(-margin[members], kind="stable")[:n]].tolist()
    order = np.array(sorted(keep), dtype=np.int64)
    return order, pred[order].astype(np.int64)
