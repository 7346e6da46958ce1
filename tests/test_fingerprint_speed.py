"""Fingerprints and search terms stay bit-identical to the ones stored by earlier versions.

Fingerprints and search terms are kept in databases and compared with freshly computed ones,
so a faster implementation must give the same bytes for every field. The golden digests below
were computed once with the code as it was before the speed work; each covers the whole
fingerprint (``to_bytes`` holds every field) and the terms string of one item, or of a
seeded random batch of items mixing every script, width, tag and entity the code handles.
"""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from feedhub.core import searchterms, sketch, textnorm
from feedhub.core.dedupe import DedupeSettings
from feedhub.core.normalize import build_item
from feedhub.core.searchterms import index_terms, item_terms
from feedhub.core.sketch import token_hashes
from feedhub.core.textnorm import clean_text, clean_title, fold, html_to_text, nfkc
from feedhub.models import Item
from feedhub.parse_worker import parse_job
from feedhub.stories import item_fingerprint

NOW = datetime(2025, 11, 25, 10, 0, tzinfo=UTC)
SETTINGS = DedupeSettings()

_LONG_ZH = "".join(
    f"<p>第{n}段：临沂市兰陵县{n * 37 % 1000}个项目总投资{n * 1.25:.2f}亿元，"
    f"同比增长{n % 30}%。</p>"
    for n in range(1, 160)
)
_LONG_EN = " ".join(
    f"Paragraph {n} says the council approved {n * 1200:,} dollars on 2025-11-{n % 28 + 1:02d}."
    for n in range(1, 200)
)

# (name, title, summary, content, link)
CASES: list[tuple[str, str, str | None, str | None, str | None]] = [
    ("zh-html", "【临沂】兰陵县招商引资签约12个项目 - 琅琊新闻网",
     "<p>记者 张伟 通讯员 王芳</p><p>11月25日，兰陵县举行招商引资签约仪式，共签约项目12个，"
     "总投资86.5亿元。</p><p>来源：临沂日报 编辑：李明</p>", None,
     "https://www.lyxw.example/news/2025-11/25/c_123.htm?utm_source=wx&id=7"),
    ("traditional", "臺灣軟體資訊產業發展論壇在臺北舉行",
     "<div>這裡的軟體資訊產業，2025年產值達到1,200億新臺幣。</div>", "<p>記者：陳大文</p>",
     "http://m.news.example/tw/1"),
    ("full-width", "ＡＢＣ新闻（独家）：２０２５年１１月２５日",
     "全角数字１２３，４５６．７８元\u3000和（括号）！？", None, None),
    ("english", "Storm hits coast - Reuters",
     "<p>By John Smith, Reuters</p><p>A storm hit the coast on Tuesday, killing 3 people.</p>"
     "<p>(Reporting by Jane Doe; Editing by Bob Roe)</p>", None,
     "https://www.reuters.example/world/storm-hits-coast-2025-11-25/"),
    ("mixed", "Apple发布iPhone 17，售价5,999元起",
     "苹果公司（Apple Inc.）今日在Cupertino发布iPhone 17系列，起售价为5,999元。"
     "さくら 한국어 テスト", "<p>更多信息：https://apple.example/iphone</p>", "https://apple.example/a#/x"),
    ("empty", "", None, None, None),
    ("empty-strings", "", "", "", ""),
    ("title-only", "【视频】(图) 快讯：济南地铁4号线开通 _新浪网", None, None, "https://news.example/"),
    ("long-zh", "兰陵县重点项目建设情况通报", _LONG_ZH, None, "https://ly.example/p/9"),
    ("long-both", "长文本摘要与正文", _LONG_ZH[:3000], _LONG_ZH, "https://ly.example/p/10"),
    ("long-en", "Council budget approved", None, _LONG_EN, "https://council.example/b?b=2&a=1"),
    ("entities", "A&amp;B &lt;公司&gt; &quot;合并&quot;",
     "<p>甲&amp;乙&nbsp;公司&#x4e2d;&#20013;&hellip;合并，涉及金额&yen;3,000万</p>", None, None),
    ("plain-entities", "Tom &amp; Jerry", "Tom &amp; Jerry &copy; 2025 Warner", None, None),
    ("numbers-dates", "2025年11月25日 10:30 济南市历下区发布通知",
     "2025-11-25 10:30 来源：济南日报\n记者 刘洋\n历下区0.50%的增长，共03个街道、1,200.00户，"
     "另有192.168.1.1……", None, None),
    ("widgets", "分享到微信：测试标题",
     "<p>正文内容在这里，涉及青岛市和烟台市。</p><p>分享到：微信 微博 QQ空间</p>"
     "<p>扫一扫关注我们</p>"
     "<p>【打印】【关闭窗口】</p><p>未经授权，禁止转载。</p><p>版权声明：本网所有内容</p>",
     None, None),
    ("scripts", "<b>粗体</b>标题", "<script>var x=1;</script><style>p{}</style><p>正文</p>"
     "<noscript>请启用</noscript>", None, None),
    ("invisible", "软\u200b件\u00ad开\ufeff发", "E\u0301cole ﬁ ①②③ ㍿ ℃ Ⅻ", None, None),
    ("compat-cjk", "\uf900\ufa0e\uf9f1 兼容汉字", "\u2f00\u2e80 部首 \u3400\u4dbf\u9fff",
     None, None),
    ("non-bmp", "𠀀𠀁 emoji 😀 新闻", "𝐀𝐁𝐂 math bold 𠮷野家 \U0001f1e8\U0001f1f3", None, None),
    ("kana-hangul", "日本語のテキスト ひらがな カタカナ", "한국어 텍스트 서울시 ㄱㄴㄷ ｶﾀｶﾅ",
     None, None),
    ("credits-inline", "测试", "责任编辑:张三 2025-11-25 审核:李四 本文来源:新华网 原标题:测试标题"
     "(记者 王五 摄)【新华社记者 赵六】", None, None),
    ("long-word", "x" * 100, "a" * 70 + " " + "b1" * 40 + " " + "中" * 300, None, None),
    ("newlines", "line\none", "\n\n  \r\n第一行\r\n\t第二行\n\n", "<br><br/>第三行<hr>", None),
    ("broken-html", "<p 未闭合", "<div class='a'>正文<p>没有闭合的 <a href=\"x\">链接", None,
     "javascript:alert(1)"),
]  # fmt: skip

GOLDEN: dict[str, str] = {
    "zh-html": "ebc67d542695b5df1d7f2d4c",
    "traditional": "d253b5eb144c815ad418ba79",
    "full-width": "c7d1d4cb08db90c26c18f1d2",
    "english": "3b09a5150351388489bbbdcc",
    "mixed": "fd36400f29c1542e3a3aa1fc",
    "empty": "d8d15cc41914c34553d93c4f",
    "empty-strings": "d8d15cc41914c34553d93c4f",
    "title-only": "2a6fae5a803fd3bcfbec9ca9",
    "long-zh": "a4349eeb98997cf54142e008",
    "long-both": "e159c4668fbde5bb89972e1a",
    "long-en": "1f71386f1da87ea88d1c6594",
    "entities": "53942889e525c2c4ec8c456f",
    "plain-entities": "4aeb604117f59db8ddb852df",
    "numbers-dates": "e5eb54d97aa7dc3cfb7444d6",
    "widgets": "c42497b3ecd97f22ac53ebb3",
    "scripts": "db756e7fb90d35cfef473442",
    "invisible": "66744c8de4f83ef0cfd2b0ba",
    "compat-cjk": "1cbb176fbb61c550eaaac3b2",
    "non-bmp": "f4021fa11dadd59297078b88",
    "kana-hangul": "748d3647bffc488c90864d8a",
    "credits-inline": "d8026868391b9dc0ec94b47b",
    "long-word": "87f81988ef76e9dfd20df5bf",
    "newlines": "9ed023a5b83a5c6db0dc5e5f",
    "broken-html": "566cc4820ebffb752bbdfdf7",
}
GOLDEN_RANDOM = "7a9b7550cb88e13bf760af4b"
GOLDEN_TEXTNORM = "eee0899484390fa90e4fe872"

_POOL = (
    list("abcdefxyzABCXYZ0123456789 .,:;!?%-_/()[]'\"#@")
    + list("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同")
    + list("臺灣軟體資訊這裡發產業與實從為國際經濟區縣鄉鎮")
    + list("ＡＢＣａｂｃ０１２３（），．：；！？％\u3000")
    + list("ぁあアンヶーㄱ가힣\u3040\u30ff\u3100\u3400\u4dbf\u4dc0\u9fff")
    + list("\ua000\uf8ff\uf900\ufaff\ufb00")
    + list("\uabff\uac00\ud7af\ud7b0\u0301\u0308\u200b\u00ad\ufeff①Ⅻ℃ﬁ…—–·、。，《》「」【】〔〕")
    + ["𠀀", "😀", "𝐀", "\U0001f1e8", "\n", "\n", " ", " ", "\t", "\r\n"]
    + ["<p>", "</p>", "<br>", "<div class=x>", "</div>", "<script>x</script>", "<b>", "</b>"]
    + ["&amp;", "&nbsp;", "&#x4e2d;", "&#20013;", "&lt;", "&gt;", "&hellip;", "&bogus;", "&"]
    + ["记者 张伟 ", "来源：", "编辑:", "2025-11-25 10:30", "2025年11月25日", "1,200.50", "03"]
    + ["临沂市", "兰陵县", "城市", "分享到 微信", "扫一扫", "(图)", "【视频】", " - 新浪网", "http"]
    + ["Reporting by Jane ", "share on facebook", "下载APP", "0.50", "192.168.1.1"]
)  # fmt: skip


def _item(title: str, summary: str | None, content: str | None, link: str | None) -> Item:
    return build_item(
        source_id="src",
        entry_id="e",
        link=link,
        title=title,
        author=None,
        summary=summary,
        content=content,
        published=NOW,
        updated=None,
        categories=(),
    )


def _random_text(rng: random.Random, length: int, pool: list[str] = _POOL) -> str:
    return "".join(rng.choice(pool) for _ in range(length))


def random_items(count: int = 300, seed: int = 20251125) -> list[Item]:
    rng = random.Random(seed)
    items = []
    for n in range(count):
        size = rng.choice((0, 5, 40, 200, 900, 3000))
        summary = _random_text(rng, size) if rng.random() < 0.8 else None
        content = _random_text(rng, rng.choice((0, 30, 700, 2600))) if rng.random() < 0.4 else None
        link = rng.choice((None, "", f"https://www.site{n % 7}.example/a/{n}?utm_source=x&b=2"))
        items.append(_item(_random_text(rng, rng.choice((0, 3, 12, 40))), summary, content, link))
    return items


def digest(item: Item) -> str:
    """One item's fingerprint bytes (every field) and terms, as a short hash."""
    fp = item_fingerprint(item, item.published or NOW, SETTINGS)
    terms = item_terms(item.title, item.summary, item.content)
    return _sha(fp.hex(), terms)


def _sha(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        h.update(b"%d:" % len(data))
        h.update(data)
    return h.hexdigest()[:24]


def batch_digest(items: list[Item]) -> str:
    return _sha(*(digest(item) for item in items))


def textnorm_digest(items: list[Item]) -> str:
    """The intermediate forms other modules use: folded, cleaned, HTML-free texts, tokens."""
    parts = []
    for item in items:
        for text in (item.title, item.summary or "", item.content or ""):
            cleaned = clean_text(text)
            parts += [html_to_text(text), fold(text), cleaned, clean_title(text)]
            parts.append(token_hashes(cleaned).tobytes().hex())
    return _sha(*parts)


@pytest.fixture(autouse=True)
def _indexed_as_when_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The digests were recorded when 600 body characters were indexed for search: what is
    checked here is that the same text gives the same terms, whatever the cut."""
    monkeypatch.setattr(searchterms, "MAX_TEXT", 600)


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_fingerprint_and_terms_match_golden(
    case: tuple[str, str, str | None, str | None, str | None],
) -> None:
    name, title, summary, content, link = case
    assert digest(_item(title, summary, content, link)) == GOLDEN[name]


def test_random_items_match_golden() -> None:
    assert batch_digest(random_items()) == GOLDEN_RANDOM


def test_textnorm_forms_match_golden() -> None:
    assert textnorm_digest(random_items(120, seed=7)) == GOLDEN_TEXTNORM


def test_parse_job_gives_what_the_separate_functions_give() -> None:
    body = "".join(
        f"<item><guid>g{n}</guid><title>{title}</title><link>https://a.example/{n}</link>"
        f"<description><![CDATA[{summary or ''}]]></description></item>"
        for n, (_, title, summary, _c, _l) in enumerate(CASES)
        if "<" not in title and "&" not in title
    )
    doc = '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
    doc += f"<link>https://a.example/</link>{body}</channel></rss>"
    feed = parse_job(doc.encode(), {}, "https://a.example/f", "src", NOW, "UTC", None,
                     SETTINGS, True)  # fmt: skip
    assert len(feed.items) > 10
    for item in feed.items:
        assert item.fingerprint == item_fingerprint(item, item.published or NOW, SETTINGS)
        assert item.search_terms == item_terms(item.title, item.summary, item.content)
    bare = parse_job(doc.encode(), {}, "https://a.example/f", "src", NOW, "UTC", None)
    assert [replace(i, fingerprint=None, search_terms=None) for i in feed.items] == list(bare.items)
    assert all(i.fingerprint is None and i.search_terms is None for i in bare.items)


def test_terms_of_unpaired_surrogates_and_nul_as_before() -> None:
    # Values from the regex implementation the faster one replaced.
    assert index_terms("a\ud800b", "中\udfff文") == "a b 中 文"
    assert index_terms("中文\ud800", "x\x00y 中\x00文") == "中文 x y 中 文"
    assert index_terms("\ud800", "") == ""


# --- the faster forms against the plain ones they replaced, on random text -------------------


def _reference_terms(title: str, text: str) -> str:
    """``index_terms`` as it was first written: NFKC, then a regex pass and a loop."""
    han = searchterms._HAN
    norm = unicodedata.normalize("NFKC", f"{title}\n{text[: searchterms.MAX_TEXT]}").casefold()
    parts = []
    for run in re.findall(rf"[{han}]+|[^\W{han}_]+", norm):
        if len(run) > 1 and re.match(rf"[{han}]", run):
            parts.append(" ".join(a + b for a, b in zip(run, run[1:], strict=False)))
        else:
            parts.append(run)
    return " ".join(parts)


def _reference_tokens(text: str) -> list[int]:
    """``token_hashes`` written character by character."""
    ranges = ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
              (0xAC00, 0xD7AF))  # fmt: skip
    weights = [int(w) for w in sketch._POSITION_WEIGHTS]
    mask = 2**64 - 1

    def mix(x: int) -> int:
        x ^= x >> 33
        x = x * 0xFF51AFD7ED558CCD & mask
        x ^= x >> 33
        x = x * 0xC4CEB9FE1A85EC53 & mask
        return x ^ (x >> 33)

    tokens: list[tuple[bool, list[int]]] = []
    previous_breaks = True
    for char in text:
        code = ord(char)
        word = code <= 0xFFFF and char.isalnum()
        cjk = any(low <= code <= high for low, high in ranges)
        if word and (cjk or previous_breaks):
            tokens.append((cjk, [code]))
        elif word:
            tokens[-1][1].append(code)
        previous_breaks = not word or cjk
    hashes = []
    for cjk, codes in tokens:
        total = sum(c * weights[min(i, len(weights) - 1)] for i, c in enumerate(codes)) & mask
        hashes.append(mix(total) & (2**63 - 1) | (sketch.CJK_FLAG if cjk else 0))
    return hashes


def test_fast_forms_equal_the_plain_ones_on_random_text() -> None:
    rng = random.Random(99)
    pool = _POOL + ["省", "市", "县", "城市", "区", "讯", "记者", "\u00a0", "\u2028", "٣", "_"]
    for _ in range(1500):
        text = _random_text(rng, rng.choice((1, 4, 30, 200)), pool)
        title = _random_text(rng, rng.choice((0, 5)), pool)
        assert nfkc(text) == unicodedata.normalize("NFKC", text)
        assert index_terms(title, text) == _reference_terms(title, text)
        folded = fold(text)
        assert textnorm._places(folded) == textnorm._PLACE.findall(folded)
        assert textnorm._ends_with_number(folded) == bool(textnorm._ENDS_WITH_NUMBER.search(folded))
        assert sketch.token_hashes(text).tolist() == _reference_tokens(text)
        hashes, head = sketch.split_token_hashes(title + "\n" + text, len(title))
        assert head == sketch.token_hashes(title).size
        assert hashes.tolist() == _reference_tokens(title + "\n" + text)
