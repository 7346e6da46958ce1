"""An in-memory ``PortalData`` with Chinese demo-like stories, for page and browser tests.

Indexes are built once (per-section newest-first lists, a hotness order, a lower-cased search
text per story), so it answers in microseconds even with 100,000 stories and page timings
measure rendering rather than this fake. Content goes through the same sanitizer storage uses,
so pages see what they would see in production.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from feedhub.core.normalize import sanitize_html
from feedhub.web.portal import Outlet, Page, SectionNode, SourceRef, StoryCard, StoryPage

# (id, title, parent): the demo configuration's tree.
DEMO_SECTIONS: tuple[tuple[str, str, str | None], ...] = (
    ("yaowen", "要闻", None),
    ("jingji", "经济", None),
    ("caijing", "财经", "jingji"),
    ("zhaoshang", "招商", "jingji"),
    ("shehui", "社会", None),
    ("tiyu", "体育", None),
    ("wenhua", "文化", None),
    ("qinggan", "情感", None),
    ("gushi", "故事", "qinggan"),
    ("zonghe", "综合", None),
)
DEMO_SOURCES: tuple[tuple[str, str], ...] = (
    ("langya-yaowen", "琅琊新闻网"),
    ("linyi-daily", "临沂日报"),
    ("yimeng-shehui", "沂蒙晚报"),
    ("qilu-caijing", "齐鲁财经"),
    ("lanling-zhaoshang", "兰陵招商网"),
    ("quancheng-tiyu", "泉城体育"),
    ("qilu-wenlv", "齐鲁文旅"),
    ("lunan-qinggan", "鲁南情感"),
    ("yishui-zaixian", "沂水在线"),
    ("qingdao-haibin", "青岛海滨网"),
)
_PLACES = ("临沂", "沂水", "兰陵", "费县", "平邑", "蒙阴", "莒南", "青岛", "济南", "日照")
_TOPICS: dict[str, tuple[str, ...]] = {
    "yaowen": ("召开全市重点项目推进会", "部署冬季安全生产工作", "发布新一轮惠民政策"),
    "jingji": ("一季度经济运行稳中向好", "外贸进出口总额创新高", "民营经济发展大会举行"),
    "caijing": ("城商行发布年度财报", "地方债发行规模扩大", "小微企业贷款利率下降"),
    "zhaoshang": ("签约十个新能源项目", "举办招商引资推介会", "产业园迎来新一批企业"),
    "shehui": ("沂河沿岸新建健身步道", "社区志愿者帮扶独居老人", "大学生返乡创业带动就业"),
    "tiyu": ("马拉松赛鸣枪开跑", "青少年足球联赛落幕", "全民健身运动会开幕"),
    "wenhua": ("非遗剪纸展在博物馆开展", "沂蒙小调走进校园", "古城文化节吸引游客"),
    "qinggan": ("一封寄了三十年的家书", "父亲的旧自行车", "外婆的那碗面"),
    "gushi": ("山村教师的坚守", "守林人和他的狗", "沂河边的摆渡人"),
    "zonghe": ("天气转凉注意保暖", "高速公路今起恢复通行", "冬季供暖准备就绪"),
}
BASE_TIME = datetime(2025, 11, 25, 0, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DemoStory:
    page: StoryPage  # related left empty: filled from ``related_ids`` when asked
    hotness: float
    related_ids: tuple[str, ...]
    text: str  # lower-cased title + excerpt + content: what search looks through


def _subtree(sections: Sequence[SectionNode], root: str) -> set[str]:
    found = {root}
    grew = True
    while grew:
        grew = False
        for s in sections:
            if s.parent in found and s.id not in found:
                found.add(s.id)
                grew = True
    return found


class MemoryPortal:
    """``PortalData`` over a list of stories held in memory."""

    def __init__(
        self,
        sections: Sequence[tuple[str, str, str | None]],
        stories: Sequence[DemoStory],
        version: str = "v1",
    ) -> None:
        self.version = version
        self.calls = 0
        self._by_id = {s.page.card.id: s for s in stories}
        newest = sorted(stories, key=lambda s: (s.page.card.published, s.page.card.id))[::-1]
        self._newest = [s.page.card for s in newest]
        self._hot = [s.page.card for s in sorted(stories, key=lambda s: -s.hotness)]
        bare = [SectionNode(i, t, p, 0) for i, t, p in sections]
        self._lists: dict[str, list[StoryCard]] = {}
        self._hot_lists: dict[str, list[StoryCard]] = {}
        for node in bare:
            members = _subtree(bare, node.id)
            self._lists[node.id] = [c for c in self._newest if c.section_id in members]
            self._hot_lists[node.id] = [c for c in self._hot if c.section_id in members]
        self._sections = tuple(replace(n, count=len(self._lists[n.id])) for n in bare)

    def sections(self) -> Sequence[SectionNode]:
        self.calls += 1
        return self._sections

    def section_stories(self, section_id: str, page: int, per_page: int) -> Page | None:
        self.calls += 1
        cards = self._lists.get(section_id)
        return None if cards is None else _page(cards, page, per_page)

    def story(self, story_id: str) -> StoryPage | None:
        self.calls += 1
        found = self._by_id.get(story_id)
        if found is None:
            return None
        related = tuple(self._by_id[r].page.card for r in found.related_ids if r in self._by_id)
        return replace(found.page, related=related)

    def hot(self, section_id: str | None, n: int) -> Sequence[StoryCard]:
        self.calls += 1
        return (self._hot if section_id is None else self._hot_lists.get(section_id, []))[:n]

    def latest(self, section_id: str | None, n: int) -> Sequence[StoryCard]:
        self.calls += 1
        return (self._newest if section_id is None else self._lists.get(section_id, []))[:n]

    def search(self, q: str, page: int, per_page: int) -> Page:
        self.calls += 1
        needle = q.lower()
        hits = [c for c in self._newest if needle in self._by_id[c.id].text]
        return _page(hits, page, per_page)

    def data_version(self) -> str:
        return self.version


def _page(cards: Sequence[StoryCard], page: int, per_page: int) -> Page:
    pages = max(1, -(-len(cards) // per_page))
    start = (page - 1) * per_page
    return Page(tuple(cards[start : start + per_page]), page, pages, len(cards))


def make_story(
    story_id: str,
    title: str,
    section_id: str | None,
    published: datetime,
    outlets: Sequence[tuple[str, str, str | None]],
    *,
    excerpt: str = "",
    content: str = "",
    author: str | None = None,
    url: str | None = None,
    hotness: float = 0.0,
    related_ids: tuple[str, ...] = (),
) -> DemoStory:
    """One story; ``outlets`` are (source id, source name, original URL); ``content`` is raw
    HTML, sanitized here as ingestion would."""
    refs = tuple(SourceRef(sid, name, link) for sid, name, link in outlets)
    card = StoryCard(
        id=story_id,
        title=title,
        url=url if url is not None else (refs[0].url if refs else None),
        published=published,
        sources=refs,
        section_id=section_id,
        excerpt=excerpt,
    )
    members = tuple(
        Outlet(r.id, r.name, title, r.url, published + timedelta(minutes=7 * i))
        for i, r in enumerate(refs)
    )
    html = sanitize_html(content, "https://news.example.cn/") if content else ""
    page = StoryPage(card, html, author, members, ())
    return DemoStory(page, hotness, related_ids, f"{title}\n{excerpt}\n{content}".lower())


def demo_stories(n: int, seed: int = 7) -> list[DemoStory]:
    """``n`` deterministic stories spread over the demo sections, newest every 7 minutes."""
    rng = random.Random(seed)
    section_ids = [s[0] for s in DEMO_SECTIONS]
    stories: list[DemoStory] = []
    for i in range(n):
        section = section_ids[i % len(section_ids)]
        place = _PLACES[rng.randrange(len(_PLACES))]
        topic = _TOPICS[section][rng.randrange(len(_TOPICS[section]))]
        title = f"{place}{topic}（第{i + 1}期）"
        picks = rng.sample(DEMO_SOURCES, k=rng.choice((1, 1, 2, 3)))
        outlets = [(sid, name, f"https://{sid}.example.cn/news/{i}.html") for sid, name in picks]
        excerpt = (
            f"{place}讯 近日，{place}{topic}。记者从有关部门了解到，相关工作正在有序推进，"
            f"群众反响良好。下一步，{place}将继续做好后续服务保障。"
        )
        content = (
            f"<p>{excerpt}</p><p>据介绍，本次活动共有<strong>{100 + i % 900}</strong>人参加，"
            f'覆盖{place}下辖多个乡镇。</p><p>详情见<a href="https://{picks[0][0]}.example.cn/'
            f'news/{i}.html">原文</a>。</p>'
        )
        same = [j for j in range(max(0, i - 40), i) if j % len(section_ids) == i % len(section_ids)]
        related = tuple(f"s{j:06d}" for j in same[-5:])
        stories.append(
            make_story(
                f"s{i:06d}",
                title,
                section,
                BASE_TIME + timedelta(minutes=7 * i),
                outlets,
                excerpt=excerpt,
                content=content,
                author=f"记者 {place}" if i % 3 == 0 else None,
                hotness=rng.random() * (1 + len(picks)),
                related_ids=related,
            )
        )
    return stories


XSS_ID = "xss000000001"
XSS_TITLE = '<script>window.__pwned="title";alert("title")</script>注意<img src=x onerror=alert(1)>'


def xss_story(related_to: str | None = None) -> DemoStory:
    """A story whose every field carries script payloads. Text fields arrive raw (a feed that
    escaped markup once decodes to it); the content is sanitized like stored content."""
    payload = (
        '<script>window.__pwned="content";alert("content")</script>'
        '<p onclick="window.__pwned=1" onmouseover="alert(2)">正文<b>加粗</b></p>'
        '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" onerror="window.__pwned=2">'
        '<a href="javascript:window.__pwned=3;alert(3)">点我</a>'
        '<iframe src="javascript:alert(4)"></iframe><svg onload="alert(5)"></svg>'
        '<form action="javascript:alert(6)"><button>提交</button></form>'
        "<style>body{display:none}</style>"
    )
    return make_story(
        XSS_ID,
        XSS_TITLE,
        "shehui",
        BASE_TIME + timedelta(days=400),
        [
            ("evil", '<b onmouseover="alert(7)">坏来源</b>', "javascript:alert(8)"),
            ("evil2", "来源二\"'><script>alert(9)</script>", 'https://evil.example.cn/a?x="><'),
        ],
        excerpt='<img src=x onerror="window.__pwned=4">摘要"><script>alert(10)</script>',
        content=payload,
        author="<script>alert(11)</script>",
        url="javascript:alert(12)",
        hotness=1e9,
        related_ids=(related_to,) if related_to else (),
    )


def demo_portal(n: int = 120, *, with_xss: bool = False, version: str = "v1") -> MemoryPortal:
    stories = demo_stories(n)
    if with_xss:
        stories.append(xss_story(stories[-1].page.card.id if stories else None))
    return MemoryPortal(DEMO_SECTIONS, stories, version=version)
