"""Related reading and hot stories: the pure core."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from feedhub.core import related as related_mod
from feedhub.core.hot import HotParams, HotStory, hot_score, rank_hot, rank_hot_by_section
from feedhub.core.related import RelatedDoc, RelatedIndex, RelatedParams, terms

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
PARAMS = RelatedParams(limit=3, max_per_source=2, half_life_days=14.0)

# Titles written for these tests: three topics, each phrased several ways.
FLOOD = [
    "兰陵县遭遇暴雨洪水 转移群众三千人",
    "暴雨洪水袭击兰陵县 多个乡镇受灾",
    "兰陵县洪水退去 灾后重建工作启动",
    "兰陵县防汛抗洪 暴雨预警升级",
    "洪水过后兰陵县农田受灾严重",
]
CHIPS = [
    "国产芯片企业发布新一代处理器",
    "芯片产业链加速国产替代 处理器出货增长",
    "新一代处理器芯片量产 性能提升三成",
    "芯片设计公司融资 处理器研发加速",
]
FOOTBALL = [
    "中超联赛第三轮 山东泰山主场击败对手",
    "山东泰山中超两连胜 主帅称赞球员",
    "中超积分榜更新 山东泰山领跑",
]


def doc(
    sid: str,
    title: str,
    *,
    days_ago: float = 1.0,
    source: str = "s1",
    section: str | None = None,
    text: str = "",
    exclude: frozenset[str] = frozenset(),
) -> RelatedDoc:
    return RelatedDoc(
        sid,
        title,
        text,
        NOW - timedelta(days=days_ago),
        (source,),
        section,
        exclude=exclude,
    )


def corpus() -> list[RelatedDoc]:
    docs = []
    for topic, titles in (("flood", FLOOD), ("chips", CHIPS), ("ball", FOOTBALL)):
        for i, title in enumerate(titles):
            docs.append(doc(f"{topic}-{i}", title, days_ago=1 + i, source=f"src-{i % 3}"))
    return docs


def ids(lst: tuple[related_mod.Related, ...]) -> list[str]:
    return [r.story_id for r in lst]


def test_terms_normalize_segment_and_drop_noise() -> None:
    got = terms("ＡＢＣ News：兰陵县的暴雨 2026!", "", 2.0, 100, bigrams=0.0)
    assert got["abc"] == got["news"] == got["暴雨"] == 2.0
    assert not {"的", "2026", "!", "：", ":", " "} & set(got)
    assert not any(t.startswith("~") for t in got)
    with_body = terms("暴雨", "暴雨 洪水", 2.0, 100, bigrams=0.5)
    assert with_body["暴雨"] == 3.0 and with_body["洪水"] == 1.0
    assert with_body["~暴雨"] == pytest.approx(1.5)


def test_related_stays_on_topic_and_never_lists_itself() -> None:
    index = RelatedIndex(PARAMS)
    for d in corpus():
        index.add(d, NOW)
    for d in corpus():
        lst = index.related(d.story_id, NOW)
        assert d.story_id not in ids(lst)
        topic = d.story_id.split("-")[0]
        assert lst and all(r.startswith(topic) for r in ids(lst)[:2]), (d.story_id, lst)
        assert [r.score for r in lst] == sorted((r.score for r in lst), reverse=True)


def test_changed_story_replaces_itself_and_still_never_lists_itself() -> None:
    index = RelatedIndex(PARAMS)
    for d in corpus():
        index.add(d, NOW)
    before = len(index)
    changes = index.add(doc("flood-0", FLOOD[0], text="兰陵县暴雨洪水 " * 3), NOW)
    assert len(index) == before
    assert "flood-0" not in ids(changes.lists["flood-0"])
    for sid, lst in changes.lists.items():
        assert sid not in ids(lst)


def test_exclude_keeps_two_stories_apart_both_ways() -> None:
    index = RelatedIndex(PARAMS)
    index.add_many(corpus())
    index.add(doc("flood-x", FLOOD[0], exclude=frozenset({"flood-1"})), NOW)
    assert "flood-1" not in ids(index.related("flood-x", NOW))
    assert "flood-x" not in ids(index.related("flood-1", NOW))
    assert "flood-0" in ids(index.related("flood-x", NOW))


def test_no_more_than_max_per_source_from_one_source() -> None:
    index = RelatedIndex(PARAMS)
    for i in range(6):  # one outlet's near-identical reports
        index.add(doc(f"same-{i}", FLOOD[i % 2], source="county-tv"), NOW)
    index.add(doc("other-a", FLOOD[2], source="daily"), NOW)
    index.add(doc("other-b", FLOOD[3], source="radio"), NOW)
    lst = index.related(doc("probe", FLOOD[0], source="web"), NOW)
    assert len(lst) == 3
    assert sum(r.startswith("same-") for r in ids(lst)) == 2
    assert any(r.startswith("other-") for r in ids(lst))
    uncapped = RelatedIndex(dataclasses.replace(PARAMS, max_per_source=0))
    uncapped.add_many(doc(f"same-{i}", FLOOD[i % 2], source="county-tv") for i in range(6))
    assert len(uncapped.related(doc("probe", FLOOD[0], source="web"), NOW)) == 3


def test_recency_prefers_the_newer_of_two_equally_similar() -> None:
    index = RelatedIndex(PARAMS)
    index.add_many(
        [
            doc("older", CHIPS[1], days_ago=10, source="a"),
            doc("newer", CHIPS[1], days_ago=2, source="b"),
            doc("noise", FOOTBALL[0], days_ago=1, source="c"),
        ]
    )
    lst = index.related(doc("probe", CHIPS[0], source="d"), NOW)
    assert ids(lst)[:2] == ["newer", "older"]
    assert lst[0].similarity == pytest.approx(lst[1].similarity)
    assert lst[0].score > lst[1].score


def test_same_section_boost_lifts_a_weaker_match_of_the_same_section() -> None:
    base = [
        doc("econ", "芯片企业 融资 上市 处理器", source="a", section="经济"),
        doc("tech", "芯片 处理器 性能", source="b", section="科技"),
    ]
    probe = doc("probe", "芯片 处理器 性能 测评", source="c", section="经济")
    plain = RelatedIndex(dataclasses.replace(PARAMS, same_section_boost=0.0))
    plain.add_many(base)
    assert ids(plain.related(probe, NOW))[0] == "tech"
    boosted = RelatedIndex(PARAMS)
    boosted.add_many(base)
    assert ids(boosted.related(probe, NOW))[0] == "econ"
    unsure = RelatedIndex(PARAMS)
    unsure.add_many([dataclasses.replace(base[0], section_confidence=0.01), base[1]])
    assert ids(unsure.related(probe, NOW))[0] == "tech"


def test_window_eviction_drops_old_stories_and_recomputes_their_holders() -> None:
    index = RelatedIndex(PARAMS)
    index.add(doc("old", FLOOD[0], days_ago=29.5, source="a"), NOW - timedelta(days=29))
    index.add(doc("mid", FLOOD[1], days_ago=20, source="b"), NOW - timedelta(days=20))
    index.add(doc("new", FLOOD[2], days_ago=1, source="c"), NOW - timedelta(days=1))
    assert "old" in ids(index.related("mid", NOW))
    later = NOW + timedelta(days=1)
    assert "old" not in ids(index.related(doc("probe", FLOOD[0]), later))  # out of the window
    changes = index.evict(later)
    assert changes.removed == ("old",)
    assert "old" not in index and len(index) == 2
    assert "mid" in changes.lists and "old" not in ids(changes.lists["mid"])
    assert ids(index.related("mid", later)) == ["new"]
    assert index.evict(later).removed == ()


def test_remove_without_now_only_drops_the_entry() -> None:
    index = RelatedIndex(PARAMS)
    for d in corpus():
        index.add(d, NOW)
    holders = [d.story_id for d in corpus() if "flood-1" in ids(index.related(d.story_id, NOW))]
    assert holders
    changes = index.remove("flood-1")
    assert changes.removed == ("flood-1",) and not changes.lists
    for sid in holders:
        assert "flood-1" not in ids(index.related(sid, NOW))
    assert index.remove("flood-1").removed == ()


def test_a_much_better_new_match_refreshes_an_older_list() -> None:
    params = dataclasses.replace(PARAMS, limit=2, refresh_margin=0.25)
    index = RelatedIndex(params)
    index.add(doc("target", "国产芯片 处理器 量产 出货", days_ago=5, source="a"), NOW)
    index.add(doc("weak-1", "芯片 行业 观察", days_ago=5, source="b"), NOW)
    index.add(doc("weak-2", "处理器 市场 观察", days_ago=5, source="c"), NOW)
    assert sorted(ids(index.related("target", NOW))) == ["weak-1", "weak-2"]
    changes = index.add(
        doc("strong", "国产芯片 处理器 量产 出货 增长", days_ago=0, source="d"), NOW
    )
    assert ids(changes.lists["target"])[0] == "strong"
    assert ids(index.related("target", NOW))[0] == "strong"
    assert ids(changes.lists["strong"])[0] == "target"
    # a new story no better than the weakest entry leaves the full list alone
    marginal = index.add(doc("faint", "行业 观察 芯片", days_ago=5, source="e"), NOW)
    assert "target" not in marginal.lists


def test_lists_are_not_refreshed_before_they_exist_and_can_be_restored() -> None:
    index = RelatedIndex(PARAMS)
    index.add_many(corpus())
    changes = index.add(doc("flood-new", FLOOD[0], source="z"), NOW)
    assert set(changes.lists) == {"flood-new"}  # nobody else had a list yet
    index.restore("flood-1", ["flood-2", "missing", "flood-1"])
    assert ids(index.related("flood-1", NOW)) == ["flood-2"]


def test_determinism_ties_by_story_id_whatever_the_insertion_order() -> None:
    twins = [doc(f"t{i}", CHIPS[0], days_ago=3, source=f"s{i}") for i in (3, 1, 2, 0)]
    probe = doc("probe", CHIPS[0], source="p")
    a = RelatedIndex(PARAMS)
    a.add_many(twins)
    b = RelatedIndex(PARAMS)
    b.add_many(reversed(twins))
    assert ids(a.related(probe, NOW)) == ids(b.related(probe, NOW)) == ["t0", "t1", "t2"]


def test_rebuild_after_many_removals_keeps_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(related_mod, "_MIN_REBUILD", 2)
    index = RelatedIndex(PARAMS)
    for d in corpus():
        index.add(d, NOW)
    want = ids(index.related(doc("probe", CHIPS[0], source="p"), NOW))
    assert all(r.startswith("chips") for r in want)
    for d in corpus():
        if not d.story_id.startswith("chips"):
            index.remove(d.story_id, NOW)
    stats = index.stats()
    assert stats["dead_slots"] < 8 and stats["slots"] < len(corpus())  # rebuilt
    assert ids(index.related(doc("probe", CHIPS[0], source="p"), NOW)) == want
    for d in corpus()[5:9]:
        assert all(r.startswith("chips") for r in ids(index.related(d.story_id, NOW)))


def test_hot_many_sources_beat_one_and_decay_with_age() -> None:
    t = NOW - timedelta(hours=2)
    four = hot_score(4, [t] * 4, NOW)
    one = hot_score(1, [t], NOW)
    assert four > one > 0
    older = hot_score(4, [t - timedelta(hours=24)] * 4, NOW)
    assert 0 < older < four
    p = HotParams(half_life=timedelta(hours=12))
    # the same story read half a life later: half the score, once its members are not recent
    calm = [NOW - timedelta(hours=10)] * 4
    assert hot_score(4, calm, NOW + timedelta(hours=12), p) == pytest.approx(
        hot_score(4, calm, NOW, p) / 2
    )
    assert hot_score(4, [NOW - timedelta(days=8)] * 4, NOW) == 0.0
    assert hot_score(0, [], NOW) == 0.0


def test_hot_spreading_fast_beats_spreading_slowly() -> None:
    fast = [NOW - timedelta(hours=h) for h in (3.0, 2.0, 1.0, 0.5)]
    slow = [NOW - timedelta(hours=3.0), NOW - timedelta(hours=9), NOW - timedelta(hours=8)]
    slow.append(NOW - timedelta(hours=7))
    assert hot_score(4, fast, NOW) > hot_score(4, slow, NOW)


def test_rank_hot_overall_and_per_section_with_stable_ties() -> None:
    t = NOW - timedelta(hours=1)
    stories = [
        HotStory("b", 1, (t,), "体育"),
        HotStory("a", 1, (t,), "体育"),
        HotStory("big", 4, (t,) * 4, "经济"),
        HotStory("stale", 9, (NOW - timedelta(days=30),) * 9, "经济"),
    ]
    assert [h.story_id for h in rank_hot(stories, NOW)] == ["big", "a", "b"]
    assert [h.story_id for h in rank_hot(stories, NOW, section="体育", limit=1)] == ["a"]
    by = rank_hot_by_section(stories, NOW)
    assert {k: [h.story_id for h in v] for k, v in by.items()} == {
        "体育": ["a", "b"],
        "经济": ["big"],
    }


def test_probing_with_an_unindexed_doc_changes_nothing() -> None:
    probe = doc("probe", "芯片 处理器 全新词汇", source="p")
    a = RelatedIndex(PARAMS)
    a.add_many(corpus())
    before = a.stats()
    for _ in range(3):
        assert ids(a.related(probe, NOW))[0].startswith("chips")
    assert a.stats() == before
    b = RelatedIndex(PARAMS)
    b.add_many(corpus())
    new = doc("new", CHIPS[2], source="q")
    assert a.add(new, NOW).lists["new"] == b.add(new, NOW).lists["new"]


def test_packing_the_postings_changes_no_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    def build() -> RelatedIndex:
        index = RelatedIndex(PARAMS)
        for d in corpus():
            index.add(d, NOW)
        index.remove("flood-2", NOW)
        index.add(doc("late", FLOOD[0] + " 芯片", source="z"), NOW)
        return index

    monkeypatch.setattr(related_mod, "_MIN_TAIL", 10**9)
    loose = build()
    monkeypatch.setattr(related_mod, "_MIN_TAIL", 1)
    monkeypatch.setattr(related_mod, "_TAIL_SHARE", 10**9)
    packed = build()
    stats = packed.stats()
    assert stats["postings"] < loose.stats()["postings"]  # the removed story's are gone
    assert {**stats, "postings": 0} == {**loose.stats(), "postings": 0}
    for d in [*corpus(), doc("late", "")]:
        if d.story_id in loose:
            assert packed.related(d.story_id, NOW) == loose.related(d.story_id, NOW)
