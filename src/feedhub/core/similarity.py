"""Fingerprints of items and the verdict on a pair of them; the rules are in ``dedupe``."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Literal

import numpy as np
from rapidfuzz.distance import Indel
from rapidfuzz.fuzz import ratio

from feedhub.core.sketch import (
    CJK_FLAG,
    jaccard,
    sketches_many,
    token_hashes,
    token_hashes_many,
)
from feedhub.core.textnorm import (
    clean_plain_text,
    clean_text,
    clean_title,
    fact_hash,
    fact_tokens,
    title_key,
    url_key,
)

__all__ = [
    "Comparison",
    "DedupeSettings",
    "Doc",
    "Fingerprint",
    "Reason",
    "compare",
    "facts_conflict",
    "fingerprint",
    "fingerprints",
    "may_merge",
    "merge_verdict",
    "substitutions",
    "title_similarity",
]

Reason = Literal["same-url", "near-duplicate"]
_TITLE_ANCHOR = 2  # tokens of a normalized title
_LEAD_ANCHOR = 4  # tokens: CJK characters or words
_SLACK = 1e-9  # room for rounding where a bound is not computed exactly as the value it bounds
FINGERPRINT_VERSION = 1


@dataclass(frozen=True, slots=True)
class DedupeSettings:
    """How alike two items must be to be one story. Defaults were chosen on the labelled
    benchmark (bench/DEDUP.md): reposts with realistic edits merge, template-made stories
    with different facts stay apart.

    ``shingle``, ``num_perm`` decide what a fingerprint contains (``scheme``); fingerprints
    made under another scheme must be recomputed. Everything else can change at any time.
    """

    window_seconds: float = 3 * 86400  # items further apart in published time never merge
    text_threshold: float = 0.5  # Jaccard of shingle sets, with titles >= title_floor
    text_alone_threshold: float = 0.9  # Jaccard that merges whatever the titles say
    containment_threshold: float = 0.8  # shorter text within the longer, with agreeing titles
    title_threshold: float = 0.8  # title similarity (0..1, normalized Indel ratio)
    title_floor: float = 0.5  # titles less alike than this need text_alone_threshold
    same_source_threshold: float = 0.9  # Jaccard needed between items of one source
    url_title_floor: float = 0.3  # same link but titles below this: a landing page
    fact_conflict_ratio: float = 0.1  # share of facts each side lacks that vetoes a merge
    min_shingles: int = 4  # texts with fewer shingles never merge by text (too little evidence)
    shingle: int = 3  # tokens per shingle: CJK characters, or words of other scripts
    num_perm: int = 128  # MinHash bins; a power of two
    lsh_rows: int = 3  # signature values per LSH band: num_perm // lsh_rows bands
    sketch_size: int = 256  # shingle hashes kept to verify candidates (exact below this)
    max_facts: int = 64  # fact hashes kept per item
    lead_tokens: int = 256  # tokens of the text's beginning kept to find substituted words
    substitution_span: int = 8  # a replaced run of at most this many tokens is a substitution
    max_candidates: int = 32  # LSH candidates verified per query, most shared bands first

    def __post_init__(self) -> None:
        if self.num_perm < 8 or self.num_perm & (self.num_perm - 1) or self.num_perm > 1024:
            raise ValueError(f"num_perm must be a power of two in 8..1024, not {self.num_perm}")
        if not 1 <= self.lsh_rows <= self.num_perm:
            raise ValueError(f"lsh_rows must be in 1..num_perm, not {self.lsh_rows}")
        if not 1 <= self.shingle <= 16:
            raise ValueError(f"shingle must be in 1..16, not {self.shingle}")
        if self.window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        for name in ("sketch_size", "max_facts", "max_candidates", "lead_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in (
            "text_threshold", "text_alone_threshold", "containment_threshold", "title_threshold",
            "title_floor", "same_source_threshold", "url_title_floor", "fact_conflict_ratio",
        ):  # fmt: skip
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within 0..1")

    @property
    def scheme(self) -> str:
        """What a fingerprint must have been made with to be compared under these settings."""
        return f"v{FINGERPRINT_VERSION}-k{self.shingle}-p{self.num_perm}"


@dataclass(frozen=True, slots=True)
class Doc:
    """An item as deduplication sees it. ``text`` may be plain text or HTML."""

    key: str
    source_id: str
    title: str
    text: str
    link: str | None
    published: datetime


_HEADER = struct.Struct("<2sBBHIIHHHHHH")
_MAGIC = b"FP"


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What one item contributes to matching: 0.3 to 2 KB as ``to_bytes``.

    ``sketch`` holds the ``sketch_size`` smallest shingle hashes (uint32, sorted; all of them
    when ``size`` is smaller), ``signature`` the one-permutation MinHash (uint16 per bin: a
    band of three values collides by chance with probability 2**-48), ``facts`` the smallest
    fact hashes (uint32, sorted) of ``fact_count``, ``lead`` the first ``lead_tokens`` tokens
    of the text as 16-bit hashes, in order.
    """

    scheme: str
    source_id: str
    url_key: str
    title: str
    size: int
    sketch: bytes
    signature: bytes
    facts: bytes
    fact_count: int
    lead: bytes

    def to_bytes(self) -> bytes:
        _, shingle, perm = _parse_scheme(self.scheme)
        strings = [s.encode("utf-8") for s in (self.source_id, self.url_key, self.title)]
        header = _HEADER.pack(
            _MAGIC, FINGERPRINT_VERSION, shingle, perm, self.size, self.fact_count,
            *(len(s) for s in strings), len(self.sketch) // 4, len(self.facts) // 4,
            len(self.lead) // 2,
        )  # fmt: skip
        return b"".join([header, *strings, self.sketch, self.signature, self.facts, self.lead])

    @classmethod
    def from_bytes(cls, data: bytes) -> Fingerprint:
        """Raises ``ValueError`` for bytes that are not a fingerprint of a known version."""
        try:
            magic, version, shingle, perm, size, facts_n, *lengths = _HEADER.unpack_from(data)
        except struct.error as exc:
            raise ValueError("not a fingerprint: too short") from exc
        if magic != _MAGIC or version != FINGERPRINT_VERSION:
            raise ValueError(f"not a fingerprint of version {FINGERPRINT_VERSION}")
        source_len, url_len, title_len, sketch_n, facts_len, lead_n = lengths
        sizes = (source_len, url_len, title_len, 4 * sketch_n, 2 * perm, 4 * facts_len, 2 * lead_n)
        if _HEADER.size + sum(sizes) != len(data):
            raise ValueError("not a fingerprint: length does not match its header")
        parts, offset = [], _HEADER.size
        for n in sizes:
            parts.append(data[offset : offset + n])
            offset += n
        try:
            source_id, url, title = (p.decode("utf-8") for p in parts[:3])
        except UnicodeDecodeError as exc:
            raise ValueError("not a fingerprint: text fields are not UTF-8") from exc
        return cls(
            scheme=f"v{version}-k{shingle}-p{perm}", source_id=source_id, url_key=url,
            title=title, size=size, sketch=parts[3], signature=parts[4], facts=parts[5],
            fact_count=facts_n, lead=parts[6],
        )  # fmt: skip


def _parse_scheme(scheme: str) -> tuple[int, int, int]:
    version, shingle, perm = scheme.split("-")
    return int(version[1:]), int(shingle[1:]), int(perm[1:])


def fingerprint(doc: Doc, settings: DedupeSettings, *, plain: str | None = None) -> Fingerprint:
    """The fingerprint of ``doc``: normalized title, link key, shingle sketch, MinHash
    signature, facts and the lead. Pure and deterministic: the same doc gives the same bytes
    anywhere.

    ``plain`` is ``html_to_text(doc.text)`` when the caller has already made it (for the
    search terms too), so that it is not made twice."""
    return fingerprints([doc], settings, plains=[plain])[0]


def fingerprints(
    docs: Sequence[Doc], settings: DedupeSettings, *, plains: Sequence[str | None] | None = None
) -> list[Fingerprint]:
    """``fingerprint`` of each doc (``plains`` as its ``plain``), with the array work done once
    for all of them: a document's items together cost a fraction of what they cost one by
    one, where NumPy's time per call outweighs the arithmetic. The title's tokens come first
    in each text (the newline ends the last of them); the lead is the text's."""
    titles: list[str] = []
    texts: list[str] = []
    for doc, plain in zip(docs, plains or [None] * len(docs), strict=True):
        title = clean_title(doc.title)
        body = clean_text(doc.text) if plain is None else clean_plain_text(plain)
        titles.append(title)
        texts.append(title + "\n" + body)
    tokens, bounds, skips = token_hashes_many(texts, [len(title) for title in titles])
    hashes, set_bounds, signatures = sketches_many(
        tokens, bounds, settings.shingle, settings.num_perm
    )
    sketch = hashes.astype("<u4", copy=False)
    lead = (tokens >> np.uint64(48)).astype("<u2")
    result = []
    for n, doc in enumerate(docs):
        facts = sorted({fact_hash(token) for token in fact_tokens(texts[n])})
        kept = facts[: settings.max_facts]
        start, end = int(set_bounds[n]), int(set_bounds[n + 1])
        lead_start = int(bounds[n]) + skips[n]
        lead_end = min(lead_start + settings.lead_tokens, int(bounds[n + 1]))
        result.append(
            Fingerprint(
                scheme=settings.scheme,
                source_id=doc.source_id,
                url_key=url_key(doc.link),
                title=title_key(titles[n]),
                size=end - start,
                sketch=sketch[start : min(end, start + settings.sketch_size)].tobytes(),
                signature=signatures[n].astype("<u2").tobytes(),
                facts=struct.pack(f"<{len(kept)}I", *kept),
                fact_count=len(facts),
                lead=lead[lead_start:lead_end].tobytes(),
            )
        )
    return result


@dataclass(frozen=True, slots=True)
class Comparison:
    """Everything that decided whether two items are one story. The vetoes (``facts_conflict``,
    ``substitutions``) are only examined for pairs that would otherwise merge: elsewhere they
    are False and 0."""

    reason: Reason | None  # None: different stories
    score: float  # 1.0 for same-url; else the evidence that passed (0 when none did)
    title_similarity: float
    text_similarity: float  # Jaccard of the shingle sets (exact or estimated)
    containment: float  # share of the smaller shingle set found in the larger
    facts_conflict: bool  # each side has numbers or places the other lacks
    substitutions: int  # words replaced in place in the titles, else in the leads


def title_similarity(a: str, b: str) -> float:
    """Normalized Indel similarity of two ``match_title`` forms, 0..1; 0 if either is empty."""
    if not a or not b:
        return 0.0
    return float(ratio(a, b)) / 100.0


def facts_conflict(a: bytes, count_a: int, b: bytes, count_b: int, ratio_: float) -> bool:
    """Whether each side has facts the other lacks, in a share of at least ``ratio_`` of the
    smaller fact set (and at least one). A repost that cut or added a paragraph only loses or
    gains facts on one side; a different story from the same template changes them on both."""
    if not a or not b:
        return False
    fa = np.frombuffer(a, dtype="<u4").tolist()
    fb = np.frombuffer(b, dtype="<u4").tolist()
    # Sketches keep the smallest hashes; beyond the smaller maximum a missing value may merely
    # have been cut off, so only values up to it are compared.
    limit = min(fa[-1] if count_a > len(fa) else 2**32, fb[-1] if count_b > len(fb) else 2**32)
    set_a = {x for x in fa if x <= limit}
    set_b = {x for x in fb if x <= limit}
    needed = max(1.0, ratio_ * min(len(set_a), len(set_b)))
    return len(set_a - set_b) >= needed and len(set_b - set_a) >= needed


def substitutions(
    a: Sequence[int], b: Sequence[int], span: int, anchor: int, *, whole: bool, flag: int
) -> int:
    """Runs of at most ``span`` tokens replaced in place by other runs of at most ``span``,
    between runs of at least ``anchor`` equal tokens (or the start of the sequences).

    Reposting inserts (tags, credits, widgets) and deletes (cut paragraphs), and folding undoes
    its character-level changes; it does not replace one word by another. A story written from
    the same template as another does exactly that: another city, company, product or figure.
    Equal runs shorter than ``anchor`` belong to the change around them ("百叶窗向左" and
    "横向彩条" share a "向"), so where a deleted paragraph meets other text the whole stretch
    is one long change, not many substitutions. A change at the very end counts only in
    ``whole`` sequences (titles): a truncated text ends anywhere, even inside a word.

    One CJK character replaced by one other (tokens carrying ``flag``) counts half: it is as
    often a Traditional/Simplified variant that conversion did not undo ("揹"/"背") as a
    different fact, and two of them are needed to count as one substitution."""
    if not a or not b or a == b:
        return 0
    halves = 0
    before = -1  # length of the equal run before the open change; -1: the start
    start_a = start_b = 0
    for op in Indel.opcodes(a, b):
        length = op.src_end - op.src_start
        if op.tag == "equal" and (length >= anchor or start_a == op.src_start):
            if start_a < op.src_start or start_b < op.dest_start:
                halves += _weight(a[start_a : op.src_start], b[start_b : op.dest_start], before,
                                  span, anchor, flag)  # fmt: skip
            # An equal run from the very start anchors whatever its length.
            before = -1 if op.src_start == 0 else length
            start_a, start_b = op.src_end, op.dest_end
    if whole and (start_a < len(a) or start_b < len(b)):
        halves += _weight(a[start_a:], b[start_b:], before, span, anchor, flag)
    return halves // 2


def _weight(
    removed: Sequence[int], added: Sequence[int], before: int, span: int, anchor: int, flag: int
) -> int:
    """2 for a substitution, 1 for a single CJK character replaced by another, else 0."""
    if not (0 < len(removed) <= span and 0 < len(added) <= span):
        return 0
    if before != -1 and before < anchor:
        return 0
    if len(removed) == len(added) == 1 and removed[0] & flag and added[0] & flag:
        return 1
    return 2


@lru_cache(maxsize=1024)
def _title_tokens(title: str) -> tuple[int, ...]:
    """``token_hashes`` of a normalized title, kept for the titles compared last: a story
    that many sources carry has its few titles compared again with every new copy."""
    return tuple(token_hashes(title).tolist())


def may_merge(a: Fingerprint, b: Fingerprint, settings: DedupeSettings) -> bool:
    """False when ``compare`` cannot find the pair one story, judged from the link keys, the
    titles and the set sizes alone (Jaccard is at most the smaller size over the larger): the
    index skips most candidates with it before computing any set similarity."""
    if a.url_key and a.url_key == b.url_key:
        return True
    small, large = sorted((a.size, b.size))
    if small < settings.min_shingles:
        return False
    bound = small / large
    titles = title_similarity(a.title, b.title)
    if a.source_id == b.source_id:
        return bound >= settings.same_source_threshold and titles >= settings.title_threshold
    if titles >= settings.title_threshold:
        return True  # containment may still pass
    needed = (
        settings.text_threshold if titles >= settings.title_floor else settings.text_alone_threshold
    )
    return bound >= needed


def compare(a: Fingerprint, b: Fingerprint, settings: DedupeSettings) -> Comparison:
    """The verdict on one pair of items, with the evidence for it."""
    titles = title_similarity(a.title, b.title)
    if (
        a.url_key
        and a.url_key == b.url_key
        and (not a.title or not b.title or titles >= settings.url_title_floor)
    ):
        return Comparison("same-url", 1.0, titles, 1.0, 1.0, False, 0)
    sketch_a = np.frombuffer(a.sketch, dtype="<u4")
    sketch_b = np.frombuffer(b.sketch, dtype="<u4")
    text, contained = jaccard(sketch_a, a.size, sketch_b, b.size)
    evidence = 0.0
    if min(a.size, b.size) >= settings.min_shingles:
        if a.source_id == b.source_id:
            if text >= settings.same_source_threshold and titles >= settings.title_threshold:
                evidence = text
        elif text >= settings.text_alone_threshold or (
            text >= settings.text_threshold and titles >= settings.title_floor
        ):
            evidence = max(text, min(contained, titles))
        elif contained >= settings.containment_threshold and titles >= settings.title_threshold:
            evidence = min(contained, titles)
    # The vetoes are only worth their cost for pairs that would otherwise merge.
    conflict = evidence > 0 and facts_conflict(
        a.facts, a.fact_count, b.facts, b.fact_count, settings.fact_conflict_ratio
    )
    replaced = 0
    if evidence > 0 and not conflict:
        span = settings.substitution_span
        title_a = list(_title_tokens(a.title))
        title_b = list(_title_tokens(b.title))
        replaced = substitutions(title_a, title_b, span, _TITLE_ANCHOR, whole=True, flag=CJK_FLAG)
        if not replaced:
            lead_a = np.frombuffer(a.lead, dtype="<u2").tolist()
            lead_b = np.frombuffer(b.lead, dtype="<u2").tolist()
            replaced = substitutions(lead_a, lead_b, span, _LEAD_ANCHOR, whole=False, flag=1 << 15)
    if conflict or replaced:
        evidence = 0.0
    reason: Reason | None = "near-duplicate" if evidence > 0 else None
    return Comparison(reason, evidence, titles, text, contained, conflict, replaced)


def merge_verdict(a: Fingerprint, b: Fingerprint, settings: DedupeSettings) -> Comparison | None:
    """``compare(a, b, settings)`` when it finds the pair one story, else None: what the story
    index asks of each candidate. Most candidates share no more than a few shingles with the
    new item; ``may_merge`` and then ``_overlap_may_pass`` settle those at a fraction of the
    cost of ``compare``, whose estimate of the overlap sorts both sketches together."""
    if not may_merge(a, b, settings):
        return None
    if not (a.url_key and a.url_key == b.url_key) and not _overlap_may_pass(a, b, settings):
        return None
    verdict = compare(a, b, settings)
    return verdict if verdict.reason is not None else None


def _overlap_may_pass(a: Fingerprint, b: Fingerprint, settings: DedupeSettings) -> bool:
    """False when no rule of ``compare`` can find the pair a near-duplicate, judged on upper
    bounds of its text similarity and containment: the shared shingle hashes of the sketches
    give the similarity exactly when neither was truncated, and otherwise bound the shared ones
    among the union's smallest hashes that ``jaccard`` counts."""
    sketch_a = np.frombuffer(a.sketch, dtype="<u4")
    sketch_b = np.frombuffer(b.sketch, dtype="<u4")
    if not sketch_a.size or not sketch_b.size:
        return False  # no overlap at all: no rule can pass
    found = sketch_b.take(sketch_b.searchsorted(sketch_a), mode="clip") == sketch_a
    shared = int(np.count_nonzero(found))
    size_a, size_b = a.size, b.size
    if size_a <= sketch_a.size and size_b <= sketch_b.size:
        text = shared / (size_a + size_b - shared)  # exact, as ``jaccard`` computes it
    else:
        k = min(s.size for s, n in ((sketch_a, size_a), (sketch_b, size_b)) if n > s.size)
        text = shared / min(k, sketch_a.size + sketch_b.size - shared)
    # Containment as ``jaccard`` derives it, rising with the similarity; rounding may not.
    contained = min(1.0, text * (size_a + size_b) / (1.0 + text) / min(size_a, size_b)) + _SLACK
    titles = title_similarity(a.title, b.title)
    if a.source_id == b.source_id:
        return text >= settings.same_source_threshold and titles >= settings.title_threshold
    if text >= settings.text_alone_threshold:
        return True
    if text >= settings.text_threshold and titles >= settings.title_floor:
        return True
    return contained >= settings.containment_threshold and titles >= settings.title_threshold
