"""The two stages of a section model with a sentence encoder.

Why a cascade: the encoder's knowledge of words that the training items never contained is what
lifts accuracy past the sparse model, but it costs several times the sparse model's time per
item. Most items are easy: their words alone separate one section from the rest by a wide
margin, and for them the sparse model and the full (sparse + dense) model nearly always agree.
So a model with an encoder keeps the weights of the sparse model alone as a first stage; an item
whose two best sparse sections are far apart (in log-odds, after the sparse model's own softmax
temperature) is answered there, and only the others are encoded and scored by the full model.

The margin is ``ModelParams.cascade_margin``, in nats of the sparse model's calibrated
probabilities, so it means the same whatever the training set: a model trained on few items is
less sure of more items and sends more of them to the encoder, which is where it helps most.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["SparseHead", "margins", "routed_share"]

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class SparseHead:
    """The sparse model alone: the cascade's first stage.

    ``margin``: an item whose best sparse section leads the second by at least this many nats
    (log-odds) is answered by this head; the others go to the full model.
    """

    w: FloatArray  # (n_terms, n_sections)
    b: FloatArray  # (n_sections,)
    temperature: float
    margin: float

    def confident(self, scores: npt.NDArray[np.floating]) -> BoolArray:
        """Rows of raw sparse scores that this head answers."""
        return margins(scores) * self.temperature >= self.margin


def margins(scores: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
    """Gap between the best and the second-best score of each row (inf with one column)."""
    if scores.shape[1] < 2:
        return np.full(scores.shape[0], np.inf)
    top2 = np.partition(scores, scores.shape[1] - 2, axis=1)[:, -2:]
    out: npt.NDArray[np.floating] = top2[:, 1] - top2[:, 0]
    return out


def routed_share(held_out: npt.NDArray[np.floating], head: SparseHead) -> float:
    """Share of held-out items that ``head`` would pass on to the full model (an estimate of
    the encoder's load, for logs; models fitted on all items are surer, so it runs high)."""
    if held_out.shape[0] == 0:
        return 1.0
    return float(1.0 - head.confident(held_out).mean())
