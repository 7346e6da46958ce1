"""Sections: each item is filed under one leaf of the operator's section tree.

Evidence, in the order it is weighed:

1. **Rules** from the configuration. A rule fires on keywords (each with a weight), include
   regexes on title and text, URL patterns, or the feed's own ``<category>`` values. A rule's
   exclude regex vetoes its section for the item. A firing ``force`` rule files the item
   outright; any other rule votes.
2. **The classifier** (``feedhub.core.classify``), when one has been trained: probabilities of
   each section from the item's words. Votes are added to its log-probabilities
   (``rule_weight`` nats per unit of weight) and the result renormalized: that is the
   *content evidence*. Without a classifier the content evidence is each section's share of
   the rule votes, the channel counting as ``channel_vote`` for its own section (cold start).
3. **The channel prior**: the section of the source the item came from. The item stays in it
   (its best leaf, when the source's section is a parent) unless the content evidence for a
   section outside it beats the best section inside it by ``override_margin``: that is how a
   county investment report in a 情感 channel ends up in 经济, and why it takes clear content.

With no prior, the best section by content wins if its share reaches ``min_confidence``;
otherwise the item goes to the ``fallback`` section. Every decision carries what led to it
(rules that fired, classifier and combined top scores, the prior), for ``feedhub explain``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import NamedTuple
from urllib.parse import urlsplit

from feedhub.core.classify import ItemText, Model
from feedhub.errors import ConfigError

__all__ = [
    "CategorizeSettings",
    "Categorizer",
    "Decision",
    "ItemText",
    "Rule",
    "RuleHit",
    "SectionTree",
    "categorize",
]

_TOP = 5
_FLOOR = 1e-6  # probability given to a leaf the classifier never saw (rules can still lift it)


@dataclass(frozen=True)
class Rule:
    """One section's rule from the configuration.

    ``keywords`` match as case-insensitive substrings of title or text (each counted once);
    ``include``/``exclude`` are regexes searched in the title and the text; ``url_patterns``
    are case-insensitive substrings of the item URL's host and path (``/caijing/``);
    ``feed_categories`` are the feed's own category values, compared case-insensitively.
    ``weight`` is the vote of a matching include regex, URL pattern or feed category.
    """

    section: str
    keywords: Mapping[str, float] = field(default_factory=dict)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    url_patterns: tuple[str, ...] = ()
    feed_categories: tuple[str, ...] = ()
    force: bool = False
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class CategorizeSettings:
    fallback: str | None = None  # leaf for items nothing places confidently; None: best guess
    min_confidence: float = 0.4  # content evidence share needed to file an item without a prior
    override_margin: float = 0.6  # how far content must beat the channel's section to leave it
    rule_weight: float = 1.0  # nats added to the classifier's log-probability per vote unit
    channel_vote: float = 1.0  # without a classifier: the channel's vote for its own section


class RuleHit(NamedTuple):
    section: str
    what: str  # e.g. "keyword 招商引资", "url /caijing/", "exclude 广告"
    weight: float
    forced: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """A leaf section and why. ``scores`` is the content evidence (classifier + rules) and
    ``classifier`` the classifier alone, each the top five, best first."""

    section: str
    reason: str  # rule-forced | content-over-prior | prior | classifier | rules |
    #              rules+classifier | fallback | no-evidence
    confidence: float
    rule_hits: tuple[RuleHit, ...] = ()
    scores: tuple[tuple[str, float], ...] = ()
    classifier: tuple[tuple[str, float], ...] = ()
    prior: str | None = None
    model_version: str | None = None

    def explain(self) -> str:
        lines = [f"section: {self.section} ({self.reason}, confidence {self.confidence:.2f})"]
        lines.append(f"source prior: {self.prior or '-'}")
        for hit in self.rule_hits:
            kind = "forces" if hit.forced else "votes"
            lines.append(f"rule {kind} {hit.section}: {hit.what} ({hit.weight:+g})")
        if self.classifier:
            top = ", ".join(f"{s} {p:.2f}" for s, p in self.classifier)
            lines.append(f"classifier {self.model_version}: {top}")
        if self.scores:
            lines.append("content evidence: " + ", ".join(f"{s} {p:.2f}" for s, p in self.scores))
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class SectionTree:
    """The operator's sections: ``parents`` maps each id to its parent id (None at the top),
    in configuration order."""

    parents: Mapping[str, str | None]

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str | None]]) -> SectionTree:
        parents = dict(pairs)
        for sid, parent in parents.items():
            if parent is not None and parent not in parents:
                raise ConfigError(f"sections: {sid}: unknown parent {parent!r}")
            seen = {sid}
            while parent is not None:
                if parent in seen:
                    raise ConfigError(f"sections: {sid}: parents form a cycle")
                seen.add(parent)
                parent = parents[parent]
        return cls(parents)

    @classmethod
    def flat(cls, leaves: Iterable[str]) -> SectionTree:
        return cls({leaf: None for leaf in leaves})

    @property
    def leaves(self) -> tuple[str, ...]:
        inner = {p for p in self.parents.values() if p is not None}
        return tuple(s for s in self.parents if s not in inner)

    def ancestors(self, section: str) -> tuple[str, ...]:
        """From the top of the tree down to ``section`` itself."""
        chain: list[str] = []
        node: str | None = section
        while node is not None:
            chain.append(node)
            node = self.parents.get(node)
        return tuple(reversed(chain))

    def leaves_under(self, section: str) -> tuple[str, ...]:
        if section not in self.parents:
            return ()
        return tuple(leaf for leaf in self.leaves if section in self.ancestors(leaf))


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: Rule
    keywords: tuple[tuple[str, str, float], ...]  # (normalized, as written, weight)
    include: tuple[re.Pattern[str], ...]
    exclude: tuple[re.Pattern[str], ...]
    urls: tuple[tuple[str, str], ...]
    categories: frozenset[str]

    @classmethod
    def of(cls, rule: Rule) -> _Compiled:
        def compile_all(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
            try:
                return tuple(re.compile(p) for p in patterns)
            except re.error as exc:
                raise ConfigError(f"sections: {rule.section}: bad regex: {exc}") from exc

        return cls(
            rule,
            tuple((_norm(k), k, float(w)) for k, w in rule.keywords.items() if k.strip()),
            compile_all(rule.include),
            compile_all(rule.exclude),
            tuple((_norm(u), u) for u in rule.url_patterns),
            frozenset(_norm(c).strip() for c in rule.feed_categories),
        )

    def match(
        self, item: ItemText, text: str, url: str, keywords: Sequence[int]
    ) -> tuple[list[RuleHit], bool]:
        """Hits of this rule, and whether its exclude vetoes its section. ``keywords``: the
        positions of this rule's keywords found in the item (see :class:`_KeywordIndex`)."""
        rule = self.rule
        for rx in self.exclude:
            if rx.search(text):
                return [RuleHit(rule.section, f"exclude /{rx.pattern}/", 0.0)], True
        hits = [
            RuleHit(rule.section, f"keyword {self.keywords[j][1]}", self.keywords[j][2], rule.force)
            for j in sorted(keywords)
        ]
        hits += [
            RuleHit(rule.section, f"include /{rx.pattern}/", rule.weight, rule.force)
            for rx in self.include
            if rx.search(text)
        ]
        if url:
            hits += [
                RuleHit(rule.section, f"url {shown}", rule.weight, rule.force)
                for pat, shown in self.urls
                if pat in url
            ]
        if self.categories:
            hits += [
                RuleHit(rule.section, f"feed category {c}", rule.weight, rule.force)
                for c in item.feed_categories
                if _norm(c).strip() in self.categories
            ]
        return hits, False


class _KeywordIndex:
    """Every rule's keywords by their first character: an item is only checked for the keywords
    that start with one of its characters, not for every keyword of every rule (the rules of a
    real tree hold hundreds). Finds exactly what testing each keyword as a substring finds."""

    def __init__(self, rules: Sequence[_Compiled]) -> None:
        self._by_first: dict[str, list[tuple[int, int, str]]] = {}
        for i, compiled in enumerate(rules):
            for j, (kw, _, _) in enumerate(compiled.keywords):
                self._by_first.setdefault(kw[0], []).append((i, j, kw))

    def find(self, norm: str) -> dict[int, list[int]]:
        """Rule position -> positions of its keywords that occur in ``norm``."""
        found: dict[int, list[int]] = {}
        get = self._by_first.get
        for ch in set(norm):
            for i, j, kw in get(ch, ()):
                if kw in norm:
                    found.setdefault(i, []).append(j)
        return found


class Categorizer:
    """Rules compiled and checked against the tree once; then :meth:`categorize` per item."""

    def __init__(
        self,
        rules: Sequence[Rule],
        tree: SectionTree,
        settings: CategorizeSettings,
        model: Model | None = None,
    ) -> None:
        problems = [
            f"sections: rule for unknown section {r.section!r}"
            for r in rules
            if r.section not in tree.parents
        ]
        if settings.fallback is not None and settings.fallback not in tree.leaves:
            problems.append(f"sections: fallback {settings.fallback!r} is not a leaf section")
        if problems:
            raise ConfigError(problems)
        self._rules = tuple(_Compiled.of(r) for r in rules)
        self._keywords = _KeywordIndex(self._rules)
        self._url_rules = any(c.urls for c in self._rules)  # else no URL is looked at
        # rules that can fire without a keyword: the others are skipped when none is found
        self._patterned = {
            i for i, c in enumerate(self._rules) if c.include or c.exclude or c.urls or c.categories
        }
        self._tree = tree
        self._settings = settings
        self._model = model
        self._leaves = tree.leaves
        self._under = {s: tree.leaves_under(s) for s in tree.parents}

    @property
    def model(self) -> Model | None:
        return self._model

    def categorize(self, item: ItemText) -> Decision:
        probs = self._model.predict_proba(item) if self._model is not None else None
        return self._decide(item, probs)

    def categorize_many(self, items: Sequence[ItemText]) -> list[Decision]:
        """Like :meth:`categorize` for each item; the classifier sees them as one batch."""
        if self._model is None:
            return [self._decide(item, None) for item in items]
        probs = self._model.predict_proba_many(items)
        return [self._decide(item, p) for item, p in zip(items, probs, strict=True)]

    # --- the decision -----------------------------------------------------------------------

    def _match(self, item: ItemText) -> tuple[list[RuleHit], set[str]]:
        text = f"{item.title}\n{item.text}" if item.text else item.title
        norm = _norm(text)
        url = ""
        if item.url and self._url_rules:
            parts = urlsplit(item.url)
            url = _norm(parts.netloc + parts.path)
        hits: list[RuleHit] = []
        vetoed: set[str] = set()
        keywords = self._keywords.find(norm)
        for i in sorted(self._patterned.union(keywords)):
            compiled = self._rules[i]
            found, veto = compiled.match(item, text, url, keywords.get(i, ()))
            hits += found
            if veto:
                vetoed.update(self._under[compiled.rule.section])
        return hits, vetoed

    def _decide(self, item: ItemText, probs: Mapping[str, float] | None) -> Decision:
        s = self._settings
        hits, vetoed = self._match(item)
        allowed = [leaf for leaf in self._leaves if leaf not in vetoed]
        votes = dict.fromkeys(allowed, 0.0)
        for hit in hits:
            for leaf in self._under[hit.section]:
                if leaf in votes:
                    votes[leaf] += hit.weight
        prior = item.source_section if item.source_section in self._under else None
        if probs is None and prior is not None and s.channel_vote > 0:
            # Without a classifier the channel is a vote too, so that one stray keyword does
            # not pull an item out of its channel; a clear majority of rule votes still does.
            for leaf in self._under[prior]:
                if leaf in votes:
                    votes[leaf] += s.channel_vote
        evidence = self._evidence(allowed, votes, probs)
        top = _top(evidence)

        def decision(section: str, reason: str) -> Decision:
            return Decision(
                section=section,
                reason=reason,
                confidence=round(evidence.get(section, 0.0), 4),
                rule_hits=tuple(hits),
                scores=top,
                classifier=_top(probs) if probs is not None else (),
                prior=item.source_section,
                model_version=self._model.version if self._model is not None else None,
            )

        forced = [h for h in hits if h.forced and any(x in votes for x in self._under[h.section])]
        if forced:
            best_hit = max(forced, key=lambda h: h.weight)  # first of the heaviest
            targets = [leaf for leaf in self._under[best_hit.section] if leaf in votes]
            return decision(self._best_of(targets, evidence), "rule-forced")
        inside = [leaf for leaf in self._under[prior] if leaf in votes] if prior else []
        if inside:
            best_in = self._best_of(inside, evidence)
            if evidence:
                best = max(allowed, key=lambda x: evidence[x])
                if best not in inside and evidence[best] - evidence[best_in] >= s.override_margin:
                    return decision(best, "content-over-prior")
            return decision(best_in, "prior")
        if evidence:
            best = max(allowed, key=lambda x: evidence[x])
            if evidence[best] >= s.min_confidence or s.fallback is None:
                voted = any(v > 0 for v in votes.values())
                if probs is None:
                    kind = "rules"
                else:
                    kind = "rules+classifier" if voted else "classifier"
                return decision(best, kind)
        if s.fallback is not None:
            return decision(s.fallback, "fallback")
        return decision(allowed[0] if allowed else self._leaves[0], "no-evidence")

    def _evidence(
        self, allowed: list[str], votes: Mapping[str, float], probs: Mapping[str, float] | None
    ) -> dict[str, float]:
        """Share of each allowed leaf in the content evidence; empty when nothing spoke."""
        if not allowed:
            return {}
        if probs is None:
            positive = {leaf: max(v, 0.0) for leaf, v in votes.items()}
            total = sum(positive.values())
            return {k: v / total for k, v in positive.items()} if total > 0 else {}
        known = [probs[leaf] for leaf in allowed if leaf in probs]
        floor = max(min(known), _FLOOR) if known else 1.0
        # softmax(log p + w * votes), as odds: p * exp(w * votes), the votes' exponent shifted
        # by the largest so that heavy rules cannot overflow; most items have no votes at all.
        w = self._settings.rule_weight
        peak = w * max(votes[leaf] for leaf in allowed)
        odds = {
            leaf: max(probs.get(leaf, floor), _FLOOR)
            * (math.exp(w * votes[leaf] - peak) if votes[leaf] or peak else 1.0)
            for leaf in allowed
        }
        total = sum(odds.values())
        return {leaf: o / total for leaf, o in odds.items()}

    def _best_of(self, leaves: Sequence[str], evidence: Mapping[str, float]) -> str:
        """The leaf with the most evidence; the first in tree order when nothing spoke."""
        if not evidence:
            return leaves[0]
        return max(leaves, key=lambda leaf: evidence.get(leaf, 0.0))


def _top(scores: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    ranked = sorted(scores.items(), key=itemgetter(1), reverse=True)[:_TOP]  # stable, as -v
    return tuple([(k, round(v, 4)) for k, v in ranked])


def categorize(
    item: ItemText,
    rules: Sequence[Rule],
    model: Model | None,
    tree: SectionTree,
    settings: CategorizeSettings,
) -> Decision:
    """One-off form of :class:`Categorizer` (which compiles the rules once for many items)."""
    return Categorizer(rules, tree, settings, model).categorize(item)
