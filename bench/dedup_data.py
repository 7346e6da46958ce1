"""Build the labelled near-duplicate benchmark from real feed text in ``$FEEDHUB_CORPUS``.

Originals are real items (title, text, link) parsed with ``feedhub.core.parse.parse_feed`` from
the Chinese and English feeds of the corpus. From them, with a seeded RNG:

- **reposts** (same label as their original): chains of the edits reposting sites make (site
  tags and names around the title, source/editor/reporter lines, share widgets, a cut or
  truncated text, Traditional/Simplified conversion, full-width characters, whitespace and
  punctuation noise, HTML wrapping, a link variant of the original). Some reposts are reposted
  again. No rewording: a rewritten article is not a repost.
- **guid churn**: the same source re-issuing an item under a new key (same label).
- **hard negatives** (new labels): the same item with every number changed (next day's edition
  of a template, same source, a day later) or its city names swapped (another city's report
  from the same template, another source). Some of these get reposts of their own.

The corpus itself adds natural hard negatives: the sina 7x24 flashes share templates
("某国新增N例确诊病例"), feeds carry many items on one topic, and the 2015 Chinese set has the
same events written up independently by several outlets (different texts, so different labels).

Exact repeats inside the corpus (one feed captured twice, the same blog in two folders) are
dropped by link and by text before anything is generated, so every original is its own story.
Everything runs from one seed: the same corpus and seed give the same benchmark.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import opencc

from feedhub.core.normalize import plain_text
from feedhub.core.parse import parse_feed
from feedhub.core.textnorm import clean_text, fold, html_to_text, match_title, url_key
from feedhub.errors import ParseError

ZH_FOLDERS = (
    "feeds-zh-tech-2016-tinyxml2",
    "feeds-zh-intl-chinese-2015-greatfire",
    "feeds-zh-qq-news-gb2312",
    "feeds-zh-sina-finance-7x24-poll-series",
    "feeds-zh-thepaper-jiemian-ifeng-feedmeup",
    "feeds-cjk-legacy-encodings-chardet",
    "feeds-zh-blogs-rssant/parser/well",
    "feeds-zh-blogs-rssant/parser/warn",
)
EN_FOLDERS = ("feeds-en-news-same-moment-2021-09-18-headlines", "feeds-en-misc-rss-parser-fixtures")
START = datetime(2026, 3, 2, tzinfo=UTC)
# Items of the corpus that are one story although their texts differ a little, found by
# reading every pair of originals the detector joined (see bench/DEDUP.md): the same article
# in two feeds, a flash re-issued with one word changed, a post re-published under a new
# title. Each group lists title beginnings in ``match_title`` form.
KNOWN_SAME_STORY = (
    ("细数社交巨无霸facebook与美国媒体的爱恨情仇",),
    ("今年两会代表不再露富",),
    ("中信证券中报季继续紧抓新能源半导体等高景气成长制造主线",),
    ("go mod的使用", "go mod使用帮助"),
    ("2016年收入最高的5个编程语言", "2016收入最高的5门编程语言"),
)
PARSE_NOW = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass(frozen=True)
class BenchItem:
    key: str
    label: str  # items with one label are one story
    source_id: str
    title: str
    text: str
    link: str | None
    published: datetime
    lang: str  # "zh" or "en" (Latin-script feeds)
    kind: str  # original, repost, guid-churn, number-swap, place-swap
    edits: tuple[str, ...] = ()
    parent: str | None = None


@dataclass
class Original:
    feed: str
    title: str
    text: str  # paragraphs separated by "\n"
    link: str | None
    lang: str


# --- reading the corpus ---------------------------------------------------------------------------


def _feed_files(corpus: Path, folders: tuple[str, ...]) -> Iterator[Path]:
    for folder in folders:
        for path in sorted((corpus / folder).rglob("*")):
            if path.is_file() and path.suffix in (".xml", ".rss", ".atom", ".rdf", ".json"):
                yield path


def _paragraphs(html: str) -> str:
    lines = (" ".join(line.split()) for line in html_to_text(html).splitlines())
    return "\n".join(line for line in lines if line)


_CJK = re.compile("[\u4e00-\u9fff]")


def load_originals(corpus: Path) -> list[Original]:
    """Distinct real items with enough text to be compared."""
    found: list[Original] = []
    seen_links: set[str] = set()
    seen_texts: set[str] = set()
    for lang, folders in (("zh", ZH_FOLDERS), ("en", EN_FOLDERS)):
        for path in _feed_files(corpus, folders):
            try:
                feed = parse_feed(
                    path.read_bytes(),
                    {},
                    url="http://feed.invalid/",
                    source_id=path.stem,
                    now=PARSE_NOW,
                    default_timezone="Asia/Shanghai",
                )
            except ParseError:
                continue
            for item in feed.items:
                title = plain_text(item.title, is_html=False)
                text = _paragraphs(item.content or item.summary or "")
                body = clean_text(text)
                if len(match_title(title)) < 4 or (len(body) < 20 and len(title) < 15):
                    continue
                if lang == "zh" and len(_CJK.findall(title + body)) < 10:
                    continue
                link_key = url_key(item.link)
                text_key = match_title(title) + "|" + fold(body)[:200]
                if (link_key and link_key in seen_links) or text_key in seen_texts:
                    continue
                seen_links.add(link_key)
                seen_texts.add(text_key)
                feed_id = f"{path.parent.name}/{path.stem}"
                found.append(Original(feed_id, title, text, item.link, lang))
    return found


# --- edits ----------------------------------------------------------------------------------------

ZH_SITES = (
    "琅琊新闻网",
    "新浪网",
    "澎湃新闻",
    "网易新闻",
    "搜狐",
    "凤凰网",
    "今日头条",
    "腾讯新闻",
    "大众网",
    "齐鲁网",
    "临沂在线",
    "沂蒙晚报",
    "中国网",
    "环球网",
    "手机凤凰网",
    "东方财富网",
)
ZH_TAGS = ("【临沂】", "【独家】", "[视频]", "(图)", "【快讯】", "【沂蒙】", "【转载】", "(组图)")
ZH_NAMES = ("张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄勇", "周婷", "吴昊")
EN_SITES = (
    "Reuters",
    "BBC News",
    "CNN",
    "AP News",
    "Yahoo News",
    "The Guardian",
    "Daily Mail Online",
)
EN_NAMES = ("John Smith", "Maria Lopez", "David Chen", "Sarah Jones", "Tom Brown")
ZH_CITIES = (
    "临沂",
    "济宁",
    "潍坊",
    "淄博",
    "枣庄",
    "日照",
    "泰安",
    "聊城",
    "德州",
    "滨州",
    "东营",
    "烟台",
    "威海",
    "青岛",
    "济南",
    "菏泽",
    "南京",
    "杭州",
    "苏州",
    "成都",
    "武汉",
    "长沙",
    "郑州",
    "西安",
    "合肥",
    "福州",
    "厦门",
    "昆明",
    "南宁",
    "北京",
    "上海",
    "天津",
    "重庆",
    "广州",
    "深圳",
    "香港",
    "台湾",
    "美国",
    "日本",
    "英国",
    "德国",
    "法国",
    "俄罗斯",
    "印度",
)
EN_CITIES = (
    "London",
    "Paris",
    "Sydney",
    "Auckland",
    "Manila",
    "Wellington",
    "New York",
    "Chicago",
    "Texas",
    "California",
    "Florida",
    "Melbourne",
    "Brisbane",
    "Tokyo",
    "Berlin",
    "Beijing",
    "Washington",
    "Canberra",
    "Singapore",
    "Hong Kong",
    "France",
    "Australia",
    "China",
)

_S2T = opencc.OpenCC("s2t")
_T2S = opencc.OpenCC("t2s")
_SENTENCE = re.compile(r"(?<=[。！？!?])|(?<=\. )")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@dataclass
class Draft:
    title: str
    paragraphs: list[str]
    link: str | None
    edits: list[str] = field(default_factory=list)
    html: bool = False

    def text(self) -> str:
        if self.html:
            return "".join(f"<p>{p}</p>" for p in self.paragraphs)
        return "\n".join(self.paragraphs)


Edit = Callable[[Draft, random.Random, str], None]


def _title_prefix(d: Draft, rng: random.Random, lang: str) -> None:
    if lang == "zh":
        d.title = rng.choice(ZH_TAGS) + d.title
    else:
        d.title = rng.choice(("UPDATE 1-", "WATCH: ", "Breaking: ", "UPDATE 2-")) + d.title


def _title_suffix(d: Draft, rng: random.Random, lang: str) -> None:
    if lang == "zh":
        form = rng.choice((" - {}", "_{}", "|{}", " | {}", "——{}", "-{}", "_{}_新闻中心"))
        d.title += form.format(rng.choice(ZH_SITES))
    else:
        d.title += rng.choice((" - {}", " | {}", " — {}")).format(rng.choice(EN_SITES))


def _title_case(d: Draft, rng: random.Random, lang: str) -> None:
    if lang != "en":
        d.title = d.title.replace("“", "\u300c").replace("”", "\u300d").replace("，", ",")
        return
    changed = rng.choice((str.title, str.lower, str.upper))(d.title)
    d.title = changed.replace("'", "’").rstrip(".") + rng.choice(("", "!", "..."))


def _source_lines(d: Draft, rng: random.Random, lang: str) -> None:
    if lang == "zh":
        head = rng.choice(
            (
                "来源：{site}",
                "本文来源：{site}",
                "原标题：{title}",
                "2026-03-0{day} 10:2{day} 来源：{site}",
                "{site}讯 记者 {name} 通讯员 {name2}",
                "发布时间：2026-03-0{day} 08:3{day}",
            )
        )
        tail = rng.choice(
            (
                "编辑：{name}",
                "责任编辑：{name}",
                "编辑：{name} 审核：{name2}",
                "（责任编辑：{name}）",
            )
        )
        names = dict(
            name=rng.choice(ZH_NAMES), name2=rng.choice(ZH_NAMES), site=rng.choice(ZH_SITES)
        )
    else:
        head = rng.choice(("By {name}", "By {name}, {site}", "{site} staff"))
        tail = rng.choice(
            (
                "(Reporting by {name}; Editing by {name2})",
                "Reporting by {name}; editing by {name2}",
                "Copyright 2026 {site}. All rights reserved.",
            )
        )
        names = dict(
            name=rng.choice(EN_NAMES), name2=rng.choice(EN_NAMES), site=rng.choice(EN_SITES)
        )
    fields = dict(names, title=d.title, day=rng.randint(1, 9))
    if rng.random() < 0.8:
        d.paragraphs.insert(0, head.format(**fields))
    if rng.random() < 0.8:
        d.paragraphs.append(tail.format(**fields))


def _inline_credit(d: Draft, rng: random.Random, lang: str) -> None:
    if not d.paragraphs:
        return
    if lang == "zh":
        credit = rng.choice(
            ("（记者 {n}）", "（记者 {n} 通讯员 {m}）", "(来源：{s})", "（图/文 {n}）")
        )
        credit = credit.format(
            n=rng.choice(ZH_NAMES), m=rng.choice(ZH_NAMES), s=rng.choice(ZH_SITES)
        )
    else:
        credit = f"(Reporting by {rng.choice(EN_NAMES)})"
    first = d.paragraphs[0]
    cut = next((m.end() for m in _SENTENCE.finditer(first) if m.end() > 0), len(first))
    d.paragraphs[0] = first[:cut] + credit + first[cut:]


def _widget(d: Draft, rng: random.Random, lang: str) -> None:
    if lang == "zh":
        d.paragraphs.append(
            rng.choice(
                (
                    "分享到：微信 微博 QQ空间",
                    "扫一扫在手机打开当前页",
                    "【纠错】【打印】【关闭】",
                    "转载请注明出处。",
                    "分享到: 微信朋友圈 新浪微博 QQ好友",
                    "点击进入专题：一季度经济观察",
                )
            )
        )
    else:
        d.paragraphs.append(
            rng.choice(("Share on Facebook Share on Twitter", "Share this article on WhatsApp"))
        )


def _cut(d: Draft, rng: random.Random, lang: str) -> None:
    """A paragraph dropped, or the text truncated to a summary, as feeds do."""
    if len(d.paragraphs) >= 3 and rng.random() < 0.6:
        drop = rng.choice((len(d.paragraphs) - 1, rng.randrange(1, len(d.paragraphs))))
        del d.paragraphs[drop]
        d.edits[-1] = "cut-paragraph"
        return
    text = "\n".join(d.paragraphs)
    sentences = [s for s in _SENTENCE.split(text) if s]
    if len(sentences) >= 4:
        keep = max(2, int(len(sentences) * rng.uniform(0.5, 0.8)))
        d.paragraphs = "".join(sentences[:keep]).split("\n")
        d.edits[-1] = "cut-sentences"
    elif len(text) > 240:
        d.paragraphs = [text[: rng.randint(160, max(161, len(text) * 2 // 3))] + "……"]
        d.edits[-1] = "truncate"
    else:
        d.edits.pop()


def _trad(d: Draft, rng: random.Random, lang: str) -> None:
    if lang != "zh":
        d.edits.pop()
        return
    sample = d.title + "".join(d.paragraphs[:3])
    # A Traditional original is reposted in Simplified, and the other way round.
    convert = _T2S.convert if _T2S.convert(sample) != sample else _S2T.convert
    d.title = convert(d.title)
    d.paragraphs = [convert(p) for p in d.paragraphs]


def _full_width(d: Draft, rng: random.Random, lang: str) -> None:
    table = {c: c + 0xFEE0 for c in range(0x21, 0x7F)}
    if lang == "en":  # English sites do not do this; curly quotes and dashes instead
        d.paragraphs = [p.replace("'", "’").replace(" - ", " — ") for p in d.paragraphs]
        return
    d.title = d.title.translate({k: v for k, v in table.items() if chr(k).isdigit()})
    d.paragraphs = [p.translate(table) for p in d.paragraphs]


def _whitespace(d: Draft, rng: random.Random, lang: str) -> None:
    choice = rng.randrange(3)
    if choice == 0:  # everything on one line, as a feed that flattens the text
        d.paragraphs = [" ".join(d.paragraphs)]
    elif choice == 1:
        d.paragraphs = [
            "\u3000\u3000" + p if lang == "zh" else "  " + p + " " for p in d.paragraphs
        ]
    else:
        d.paragraphs = [p.replace("，", ", ").replace("。", "。 ") for p in d.paragraphs]
        d.title = d.title.replace(" ", "  ")


def _html(d: Draft, rng: random.Random, lang: str) -> None:
    d.html = True
    if d.paragraphs and rng.random() < 0.5:
        d.paragraphs.insert(1, '<img src="/img/1.jpg" alt="">')


def _link_variant(d: Draft, rng: random.Random, lang: str) -> None:
    """The aggregator links to the original article: another scheme, mobile host, tracking."""
    if not d.link or not d.link.startswith("http"):
        d.edits.pop()
        return
    link = d.link.replace("https://", "http://") if rng.random() < 0.5 else d.link
    link = re.sub(r"^(https?://)(?:www\.)?", r"\1m.", link) if rng.random() < 0.5 else link
    sep = "&" if "?" in link else "?"
    d.link = link + rng.choice(
        (f"{sep}utm_source=aggregator&utm_medium=rss", "", f"{sep}from=timeline")
    )


EDITS: dict[str, tuple[Edit, float]] = {
    "title-prefix": (_title_prefix, 0.35),
    "title-suffix": (_title_suffix, 0.5),
    "title-punctuation": (_title_case, 0.2),
    "source-lines": (_source_lines, 0.45),
    "inline-credit": (_inline_credit, 0.2),
    "share-widget": (_widget, 0.3),
    "cut": (_cut, 0.3),
    "trad-simp": (_trad, 0.2),
    "full-width": (_full_width, 0.15),
    "whitespace": (_whitespace, 0.25),
    "html": (_html, 0.2),
    "same-link": (_link_variant, 0.1),
}


def make_repost(base: Draft, rng: random.Random, lang: str) -> Draft:
    draft = replace(base, paragraphs=list(base.paragraphs), edits=[], html=False)
    chosen = [name for name, (_, p) in EDITS.items() if rng.random() < p]
    if not chosen:
        chosen = [rng.choice(list(EDITS))]
    for name in chosen:
        draft.edits.append(name)
        EDITS[name][0](draft, rng, lang)
    if draft.link == base.link or "same-link" not in draft.edits:
        draft.link = f"https://repost{rng.randrange(10**6)}.example/{rng.randrange(10**9)}.html"
    return draft


# --- hard negatives -------------------------------------------------------------------------------


def _other_number(raw: str, rng: random.Random) -> str:
    if "." in raw:
        whole, frac = raw.split(".")
        return f"{whole}.{int(frac) + rng.randint(1, 9) % (10 ** len(frac)):0{len(frac)}d}"
    value = int(raw)
    if 1900 <= value <= 2100:
        return str(value + rng.choice((-1, 1)))
    if value <= 31:
        return str(value % 28 + 1)
    return str(max(1, value + rng.choice((-1, 1)) * rng.randint(1, max(1, value // 3))))


def number_swap(draft: Draft, rng: random.Random) -> Draft | None:
    """Every number changed consistently: the next edition of a template."""
    text = draft.title + "\n" + "\n".join(draft.paragraphs)
    numbers = sorted(set(_NUMBER.findall(text)), key=lambda n: (-len(n), n))
    if len(numbers) < 2:
        return None
    mapping = {n: _other_number(n, rng) for n in numbers}
    mapping = {k: v for k, v in mapping.items() if v not in numbers}
    if len(mapping) < 2:
        return None
    pattern = re.compile(
        r"(?<![\d.])(?:" + "|".join(re.escape(n) for n in mapping) + r")(?![\d.]\d)"
    )

    def swap(s: str) -> str:
        return pattern.sub(lambda m: mapping[m.group()], s)

    if len(pattern.findall(text)) < 2:  # numbers inside version strings and the like
        return None
    return Draft(swap(draft.title), [swap(p) for p in draft.paragraphs], None, ["number-swap"])


def place_swap(draft: Draft, rng: random.Random, lang: str) -> Draft | None:
    """Every known city or country name replaced by another: another place's report. Only for
    items naming the place in the title or the first 150 characters, where a report from a
    template names it; a passing mention deep in an article does not make another story."""
    cities = ZH_CITIES if lang == "zh" else EN_CITIES
    text = draft.title + "\n" + "\n".join(draft.paragraphs)
    present = [c for c in cities if c in text[: len(draft.title) + 150]]
    if not present:
        return None
    others = [c for c in cities if c not in present]
    mapping = dict(zip(present, rng.sample(others, len(present)), strict=True))
    pattern = re.compile("|".join(re.escape(c) for c in sorted(mapping, key=len, reverse=True)))

    def swap(s: str) -> str:
        return pattern.sub(lambda m: mapping[m.group()], s)

    return Draft(swap(draft.title), [swap(p) for p in draft.paragraphs], None, ["place-swap"])


# --- the benchmark --------------------------------------------------------------------------------


def build(
    corpus: Path,
    *,
    seed: int = 20260302,
    repost_share: float = 0.45,
    negative_share: float = 0.25,
    limit: int | None = None,
) -> list[BenchItem]:
    """The labelled items in time order."""
    rng = random.Random(seed)
    originals = load_originals(corpus)
    rng.shuffle(originals)
    if limit is not None:
        originals = originals[:limit]
    items: list[BenchItem] = []
    span = timedelta(hours=36).total_seconds()
    known: dict[int, str] = {}
    for n, orig in enumerate(originals):
        label = f"s{n}"
        title = match_title(orig.title)
        for group_id, group in enumerate(KNOWN_SAME_STORY):
            if any(title.startswith(prefix) for prefix in group):
                label = known.setdefault(group_id, label)
        t0 = START + timedelta(seconds=rng.uniform(0, span))
        base = Draft(orig.title, orig.text.split("\n"), orig.link)
        items.append(
            BenchItem(
                f"o{n}",
                label,
                orig.feed,
                orig.title,
                orig.text,
                orig.link,
                t0,
                orig.lang,
                "original",
            )
        )
        if rng.random() < repost_share:
            items.extend(_reposts(f"o{n}", label, base, t0, orig.lang, rng))
        if rng.random() < 0.03:
            items.append(
                BenchItem(
                    f"o{n}g",
                    label,
                    orig.feed,
                    orig.title,
                    orig.text + "\n",
                    orig.link and orig.link + "?p=1",
                    t0 + timedelta(minutes=rng.uniform(10, 600)),
                    orig.lang,
                    "guid-churn",
                    parent=f"o{n}",
                )
            )
        if len(clean_text(orig.text)) <= 1200 and rng.random() < negative_share:
            kind = rng.choice(("number-swap", "place-swap"))
            neg = (
                number_swap(base, rng)
                if kind == "number-swap"
                else place_swap(base, rng, orig.lang)
            )
            if neg is None:
                continue
            neg_label = f"s{n}x"
            if kind == "number-swap":  # next day's edition, same source
                source, t1 = orig.feed, t0 + timedelta(hours=rng.uniform(20, 28))
            else:  # another city's portal, same day
                source, t1 = f"city-{rng.randrange(100)}", t0 + timedelta(hours=rng.uniform(-6, 12))
            items.append(
                BenchItem(
                    f"o{n}x",
                    neg_label,
                    source,
                    neg.title,
                    neg.text(),
                    None,
                    t1,
                    orig.lang,
                    kind,
                    parent=f"o{n}",
                )
            )
            if rng.random() < 0.4:
                items.extend(_reposts(f"o{n}x", neg_label, neg, t1, orig.lang, rng))
    items.sort(key=lambda i: (i.published, i.key))
    return items


def _reposts(
    parent_key: str, label: str, base: Draft, t0: datetime, lang: str, rng: random.Random
) -> list[BenchItem]:
    made: list[BenchItem] = []
    parents = [(parent_key, base, t0)]
    sites = rng.sample(range(200), 3)  # a site reposts an article once
    for r in range(rng.choice((1, 1, 2, 3))):
        pkey, pdraft, pt = parents[-1] if rng.random() < 0.3 else parents[0]
        draft = make_repost(pdraft, rng, lang)
        t = pt + timedelta(minutes=rng.uniform(5, 12 * 60))
        key = f"{parent_key}r{r}"
        made.append(
            BenchItem(
                key,
                label,
                f"repost-{sites[r]}",
                draft.title,
                draft.text(),
                draft.link,
                t,
                lang,
                "repost",
                tuple(draft.edits),
                pkey,
            )
        )
        draft.html = False
        parents.append((key, draft, t))
    return made
