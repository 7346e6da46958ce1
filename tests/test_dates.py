"""Feed dates as Chinese publishers write them, read into aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from feedhub.core.dates import default_timezone_for, parse_date

SHANGHAI = ZoneInfo("Asia/Shanghai")
EIGHT_AM_BEIJING = datetime(2025, 11, 25, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "2025/11/25 08:00",
        "2025-11-25 08:00:00",
        "2025年11月25日 08:00",
        "2025年11月25日 08时00分",
        "2025年11月25日08:00:00",
        "2025-11-25T08:00:00",
        "2025.11.25 08:00",
        "2025-11-25 08:00:00.000",
        "Tue, 25 Nov 2025 08:00:00",
        "Tue, 25 Nov 2025 08:00:00 CST",
        "Tue, 25 Nov 2025 08:00:00 +0800",
        "Tue, 25 Nov 2025 00:00:00 GMT",
        "25 Nov 2025 00:00 UT",
        "Tue, 25 Nov 2025 08:00:00 GMT+8",
        "Tue, 25 Nov 2025 08:00:00 +0800 (CST)",
        "2025-11-25T08:00:00+08:00",
        "2025-11-25T00:00:00Z",
        "2025-11-25T00:00:00.000Z",
        "2025-11-24T19:00:00-05:00",
        "2025-11-25 08:00:00 +08:00",
        "Tue Nov 25 08:00:00 CST 2025",
        "２０２５－１１－２５　０８：００",
        "  2025-11-25\n08:00  ",
    ],
)
def test_forms_of_eight_in_the_morning_in_beijing(value: str) -> None:
    result = parse_date(value, SHANGHAI, lang="zh-CN")
    assert result == EIGHT_AM_BEIJING
    assert result is not None and result.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025年11月25日", datetime(2025, 11, 24, 16, 0, tzinfo=UTC)),
        ("2025-11-25", datetime(2025, 11, 24, 16, 0, tzinfo=UTC)),
        ("2025/1/5 9:05", datetime(2025, 1, 5, 1, 5, tzinfo=UTC)),
        ("2005-5-8 9:39:31", datetime(2005, 5, 8, 1, 39, 31, tzinfo=UTC)),
        ("2025年11月25日 20时30分15秒", datetime(2025, 11, 25, 12, 30, 15, tzinfo=UTC)),
        ("2025-11-25 08:00 PM", datetime(2025, 11, 25, 12, 0, tzinfo=UTC)),
        ("Nov 25, 2025 8:00 PM", datetime(2025, 11, 25, 12, 0, tzinfo=UTC)),
        ("Tue, 27 Dec 2005 13:08:54+0900", datetime(2005, 12, 27, 4, 8, 54, tzinfo=UTC)),
        ("Sat, 1 Feb 25 08:00:00 +0800", datetime(2025, 2, 1, 0, 0, tzinfo=UTC)),
        ("2019-09-01T01:22:38.123456789Z", datetime(2019, 9, 1, 1, 22, 38, 123456, tzinfo=UTC)),
    ],
)
def test_dates_times_and_zones(value: str, expected: datetime) -> None:
    assert parse_date(value, SHANGHAI, lang="zh") == expected


def test_zoneless_time_is_local_time_of_the_source() -> None:
    value = "2025-11-25 08:00:00"
    assert parse_date(value, SHANGHAI, lang=None) == datetime(2025, 11, 25, 0, tzinfo=UTC)
    assert parse_date(value, ZoneInfo("Europe/Berlin"), lang=None) == datetime(
        2025, 11, 25, 7, tzinfo=UTC
    )
    assert parse_date(value, UTC, lang=None) == datetime(2025, 11, 25, 8, tzinfo=UTC)


def test_cst_means_china_in_a_chinese_feed_and_us_central_elsewhere() -> None:
    value = "Tue, 25 Nov 2025 08:00:00 CST"
    china = datetime(2025, 11, 25, 0, tzinfo=UTC)
    central = datetime(2025, 11, 25, 14, tzinfo=UTC)
    assert parse_date(value, UTC, lang="zh-CN") == china
    assert parse_date(value, UTC, lang="zh-TW") == china
    assert parse_date(value, SHANGHAI, lang=None) == china  # no language, Chinese source zone
    assert parse_date(value, timezone(timedelta(hours=8)), lang=None) == china
    assert parse_date(value, UTC, lang="en") == central
    assert parse_date(value, ZoneInfo("America/Chicago"), lang=None) == central


def test_explicit_zone_wins_over_the_source_zone() -> None:
    value = "2025-11-25T08:00:00+09:00"
    assert parse_date(value, SHANGHAI, lang="zh") == datetime(2025, 11, 24, 23, tzinfo=UTC)
    assert parse_date("Tue, 25 Nov 2025 08:00:00 EST", SHANGHAI, lang="zh") == datetime(
        2025, 11, 25, 13, tzinfo=UTC
    )


def test_unknown_zone_abbreviation_falls_back_to_source_zone() -> None:
    assert parse_date("Tue, 25 Nov 2025 08:00:00 XYZ", SHANGHAI, lang="zh") == datetime(
        2025, 11, 25, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "garbage",
        "05/20 7:03 am",  # no year: no safe guess
        "2025-13-01 08:00",
        "2025-02-30",
        "2025-11-25 25:00",
        "Tue, 32 Nov 2025 08:00:00 +0800",
        "Tue, 25 Foo 2025 08:00:00 +0800",
        "Nov 25 08:00:00",
        "1" * 100,
    ],
)
def test_unreadable_dates_give_none_rather_than_a_wrong_day(value: str) -> None:
    assert parse_date(value, SHANGHAI, lang="zh") is None


def test_result_is_aware_utc_across_a_dst_change() -> None:
    new_york = ZoneInfo("America/New_York")
    summer = parse_date("2025-07-01 12:00", new_york, lang="en")
    winter = parse_date("2025-12-01 12:00", new_york, lang="en")
    assert summer == datetime(2025, 7, 1, 16, tzinfo=UTC)
    assert winter == datetime(2025, 12, 1, 17, tzinfo=UTC)


@pytest.mark.parametrize(
    ("language", "zone"),
    [
        ("zh", "Asia/Shanghai"),
        ("zh-CN", "Asia/Shanghai"),
        ("zh_cn", "Asia/Shanghai"),
        ("zh-Hans-CN", "Asia/Shanghai"),
        ("zh-TW", "Asia/Taipei"),
        ("zh-Hant-TW", "Asia/Taipei"),
        ("zh-Hant", "Asia/Taipei"),
        ("zh-HK", "Asia/Hong_Kong"),
        ("zh-hk", "Asia/Hong_Kong"),
        ("zh-MO", "Asia/Macau"),
        ("en", "UTC"),
        ("en-US", "UTC"),
        ("", "UTC"),
    ],
)
def test_default_timezone_for_language(language: str, zone: str) -> None:
    assert default_timezone_for(language) == zone
    ZoneInfo(default_timezone_for(language))  # every answer is a real zone
