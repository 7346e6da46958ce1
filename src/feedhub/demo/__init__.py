"""Sample feeds for the offline demo (``config/demo.yaml``).

The web server serves the files in ``FEEDS_DIR`` at ``/demo/feeds/<name>``, and the demo's
sources point there, so the demo goes through the same fetch, parse and store path as real
feeds on a machine with no network. The text is fictional, written for the project (outlets,
people and figures are invented; place names are real).

The files are built to exercise the pipeline, not just to fill the page:

- formats: RSS 2.0 (``.rss``), RSS 1.0/RDF (``.rdf``), Atom 1.0 (``.atom``), JSON Feed 1.1
  (``.json``); encodings: GB2312 (``yimeng-shehui``, ``lunan-qinggan``), GBK with a character
  outside GB2312 (``qilu-caijing``), UTF-8 elsewhere;
- dates: RFC 822 ``+0800``, ``CST`` (``quancheng-tiyu``), zone-less ``2025-11-26 20:30:00``
  (``lunan-qinggan``, ``yishui-zaixian``), ``2025年11月26日 09:00`` (``lunan-qinggan``);
- ids: guids, opaque guids, no guid (``yishui-zaixian``: the link), no guid and no link (one
  ``lunan-qinggan`` item: a content hash); ``utm_`` parameters on links; relative images;
- reposts, for story merging: six stories carried by two or three outlets with a ``【临沂】``
  or ``【青岛】`` prefix, a `` - 琅琊新闻网`` suffix, a cut paragraph, an added source and
  editor line; and hard negatives that must stay apart: the 兰陵 and 郯城 project launches,
  the 11-26 and 11-27 market closes, the 临沂 cold-wave and 青岛 gale warnings;
- a channel/content mismatch, for categorization: ``lunan-qinggan`` (a 故事 channel) carries
  an investment-promotion report (沂水县赴长三角开展招商推介 ...);
- one hostile item (``yishui-zaixian``, 网友爆料 ...) with ``<script>``, ``onerror`` and a
  ``javascript:`` link, which sanitizing must make inert.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["FEEDS_DIR", "MEDIA_TYPES", "content_type"]

FEEDS_DIR: Path = Path(__file__).resolve().parent / "feeds"

MEDIA_TYPES: dict[str, str] = {
    ".rss": "application/rss+xml",
    ".rdf": "application/rdf+xml",
    ".atom": "application/atom+xml",
    ".json": "application/feed+json",
}

_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def content_type(path: Path) -> str:
    """The ``Content-Type`` to serve a bundled file with: the media type from its suffix and
    the charset its XML declaration names (UTF-8 without one, as XML and JSON default to),
    so that the charset header and the bytes agree the way a well-run publisher's do."""
    with path.open("rb") as handle:
        match = _XML_ENCODING.match(handle.read(256))
    charset = match.group(1).decode("ascii").lower() if match else "utf-8"
    return f"{MEDIA_TYPES.get(path.suffix, 'application/xml')}; charset={charset}"
