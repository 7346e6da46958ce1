"""Which items tell the same story: exact and near-duplicate detection for reposted news.

Regional portals repost each other: the same report arrives from the county site, the city paper
and two aggregators, each adding a tag, a site name, an editor line or a share widget, or
cutting a paragraph. Two items are taken for one story when

- **same-url**: their links name the same article (``url_key``: scheme, ``www.``/``m.`` hosts,
  tracking parameters and trailing slashes ignored), unless their titles have nothing in common
  (then the link is a landing page, not an article); or
- **near-duplicate**: after ``textnorm`` has removed what reposting adds, the shingle sets of
  title plus text overlap by at least ``text_threshold`` (Jaccard) under titles at least
  ``title_floor`` alike, or by ``text_alone_threshold`` whatever the titles, or the shorter text
  lies within the longer one (containment >= ``containment_threshold``, a cut or truncated
  repost) under titles >= ``title_threshold``; unless a veto says these are two stories written
  from one template. Same topic is not the same story: two cities' "重大项目集中开工" reports,
  or two days' market summaries, share most of their words and differ exactly in their facts.
  The vetoes: *facts* (numbers, place names) that each side has and the other lacks, in a share
  of at least ``fact_conflict_ratio``; or a *substitution*, a word or name replaced in place in
  the titles or the first ``lead_tokens`` tokens of text, which reposting never does (it adds
  and cuts) and a template's next edition always does.

Items of one source are compared under a stricter rule: a source does not repost itself, but it
does re-issue an article under a new guid ("guid churn"), so its own items merge only on the
same link or when nearly identical (``same_source_threshold`` on text, ``title_threshold`` on
titles); a daily series written from one template stays apart.

Use: ``fingerprint(doc, settings)`` once per item (store ``fp.to_bytes()`` with the item);
``StoryIndex.match`` for a new item, then ``StoryIndex.add`` with the story it joined or a new
one; ``StoryIndex.evict_before`` as the window moves; ``StoryIndex.add_many`` to rebuild the
window from stored fingerprints at start-up. ``compare`` explains the verdict on any pair.

Modules: ``textnorm`` (folding, boilerplate, titles, facts, link keys), ``sketch`` (shingles,
MinHash, Jaccard), ``similarity`` (fingerprints and the pair verdict), ``bands`` (the LSH
table), ``story_index`` (the window). This module is the public surface.
"""

from feedhub.core.similarity import (
    Comparison,
    DedupeSettings,
    Doc,
    Fingerprint,
    Reason,
    compare,
    fingerprint,
)
from feedhub.core.story_index import Match, StoryIndex
from feedhub.core.textnorm import url_key

__all__ = [
    "Comparison",
    "DedupeSettings",
    "Doc",
    "Fingerprint",
    "Match",
    "Reason",
    "StoryIndex",
    "compare",
    "fingerprint",
    "url_key",
]
