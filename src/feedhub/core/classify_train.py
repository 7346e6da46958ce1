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

from feedhub.core.classify import (
    ModelParams,
    TextEncoder,
    Vocabulary,
    Weights,
    build_vocab,
    default_temperature,
    temperature_grid,
    vectorize,
)

__all__ = ["fit"]

IntArray = npt.NDArray[np.int64]


def fit(
    ordered: Sequence[tuple[str, str]],
    pool: Sequence[str],
    classes: Sequence[str],
    params: ModelParams,
    encoder: TextEncoder | None,
) -> Weights:
    """Weights of a one-vs-rest linear SVM over ``ordered`` (text, label) pairs.

    ``pool``: unlabelled texts for one round of self-training (empty: none).
    """
    texts = [t for t, _ in ordered]
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[label] for _, label in ordered], dtype=np.int64)
    vocab, idf = build_vocab(texts, params.max_features)
    x = _matrix(texts, vocab, encoder, params)
    temperature = _calibrate(x, y, len(classes), params)
    w, b = _fit_svm(x, y, len(classes), params)
    n_pseudo = 0
    if pool:
        xp = _matrix(pool, vocab, encoder, params)
        scores = np.asarray(xp @ w) + b
        keep, labels = _confident(scores, params.self_training)
        n_pseudo = len(keep)
        if n_pseudo:
            x2 = sparse.vstack([x, xp[keep]]).tocsr()
            w, b = _fit_svm(x2, np.concatenate([y, labels]), len(classes), params)
    n_terms = vocab.size
    counts = {c: int((y == i).sum()) for c, i in index.items()}
    extra: dict[str, Any] = {"examples": counts, "pseudo_labelled": n_pseudo, "terms": n_terms}
    return Weights(
        vocab=vocab,
        idf=idf,
        w=np.ascontiguousarray(w[:n_terms], dtype=np.float32),
        wd=np.ascontiguousarray(w[n_terms:], dtype=np.float32),
        b=b.astype(np.float32),
        temperature=temperature,
        extra=extra,
    )


def _matrix(
    texts: Sequence[str],
    vocab: Vocabulary,
    encoder: TextEncoder | None,
    params: ModelParams,
) -> Any:
    rows_i, rows_v = vectorize(texts, vocab)
    indptr = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows_i], out=indptr[1:])
    indices = np.fromiter((j for r in rows_i for j in r), dtype=np.int64, count=int(indptr[-1]))
    data = np.fromiter((v for r in rows_v for v in r), dtype=np.float64, count=int(indptr[-1]))
    x = sparse.csr_matrix((data, indices, indptr), shape=(len(texts), vocab.size))
    if encoder is None:
        return x
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


def _calibrate(x: Any, y: IntArray, n_classes: int, params: ModelParams) -> float:
    """Softmax temperature minimizing the log loss of out-of-fold scores."""
    smallest = int(np.bincount(y, minlength=n_classes)[np.unique(y)].min())
    folds = min(3, smallest)
    if folds < 2:
        return default_temperature()
    scores = np.zeros((len(y), n_classes))
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=params.seed)
    for train, test in split.split(np.zeros(len(y)), y):
        if len(np.unique(y[train])) < 2:
            return default_temperature()
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
    return best


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
