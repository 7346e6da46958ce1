from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from feedhub.config import config_path, json_schema, load_settings, parse_settings
from feedhub.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
site:
  title: 琅琊新闻汇
  base_url: https://news.example.cn/
  language: zh-CN
sections:
  - id: qinggan
    title: 情感
  - id: gushi
    title: 故事
    parent: qinggan
  - id: jingji
    title: 经济
sources:
  - id: linyi
    name: 琅琊新闻网
    url: https://www.example.cn/rss.xml
    region: 临沂
    section: gushi
    interval: 15m
    encoding: gb2312
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_settings(text, "feedhub.yaml", env or {})
    return info.value.problems


def test_valid_config_is_typed() -> None:
    settings = parse_settings(GOOD, "feedhub.yaml", {})
    source = settings.sources[0]
    assert source.interval == 900.0
    assert source.encoding == "gb2312"
    assert settings.sections[1].parent == "qinggan"
    assert settings.storage.url == "sqlite:///data/feedhub.db"
    assert settings.fetch.allow_private_networks is False


def test_env_overrides_storage_url() -> None:
    settings = parse_settings(GOOD, "f.yaml", {"FEEDHUB_STORAGE_URL": "postgresql://u@h/db"})
    assert settings.storage.url == "postgresql://u@h/db"


def test_unknown_key_names_file_line_and_key() -> None:
    text = GOOD.replace("  language: zh-CN", "  langauge: zh-CN")
    assert problems(text) == ["feedhub.yaml:4: site.langauge: unknown key"]


def test_unknown_key_in_a_source_names_the_source() -> None:
    text = GOOD + "    intervall: 5m\n"
    [problem] = problems(text)
    assert problem.startswith("feedhub.yaml:21: sources[0] (id=linyi).intervall")


def test_duplicate_source_id() -> None:
    text = GOOD + "  - id: linyi\n    name: again\n    url: https://b.example.cn/feed\n"
    [problem] = problems(text)
    assert problem.startswith("feedhub.yaml:21: sources[1] (id=linyi).id: duplicate source id")


def test_duplicate_section_id_and_missing_parent() -> None:
    text = GOOD.replace("    parent: qinggan", "    parent: qingan").replace(
        "  - id: jingji", "  - id: gushi"
    )
    found = problems(text)
    assert any(p.startswith("feedhub.yaml:11: sections[2] (id=gushi).id: duplicate") for p in found)
    assert any(
        p.startswith("feedhub.yaml:10: sections[1] (id=gushi).parent: unknown parent section")
        for p in found
    )


def test_section_cycle_is_an_error() -> None:
    text = GOOD.replace(
        "  - id: qinggan\n    title: 情感", "  - id: qinggan\n    title: 情感\n    parent: gushi"
    )
    assert any("its own ancestor" in p for p in problems(text))


def test_bad_url_and_duration() -> None:
    text = GOOD.replace("https://www.example.cn/rss.xml", "ftp://x").replace("15m", "soon")
    found = problems(text)
    assert "feedhub.yaml:16: sources[0] (id=linyi).url: 'ftp://x' is not an http(s) URL" in found
    assert any(p.startswith("feedhub.yaml:19: sources[0] (id=linyi).interval:") for p in found)


def test_unknown_section_and_timezone_on_a_source() -> None:
    text = GOOD.replace("section: gushi", "section: nowhere") + "    timezone: Mars/Base\n"
    found = problems(text)
    assert any("sources[0] (id=linyi).section: unknown section 'nowhere'" in p for p in found)
    assert any("unknown time zone 'Mars/Base'" in p for p in found)


def test_yaml_syntax_error_has_a_line() -> None:
    [problem] = problems("site:\n  title: [unclosed\nsources: []\n")
    assert problem.startswith("feedhub.yaml:3:")


def test_duplicate_yaml_key_is_an_error() -> None:
    [problem] = problems("site:\n  title: a\n  title: b\n")
    assert problem.startswith("feedhub.yaml:3:")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "nope.yaml", {})


def test_config_path_precedence() -> None:
    assert config_path("a.yaml", {"FEEDHUB_CONFIG": "b.yaml"}) == Path("a.yaml")
    assert config_path(None, {"FEEDHUB_CONFIG": "b.yaml"}) == Path("b.yaml")
    assert config_path(None, {}) == Path("config/feedhub.yaml")


def test_shipped_configs_are_valid() -> None:
    for name in ("feedhub.yaml",):
        loaded = load_settings(ROOT / "config" / name, {})
        assert loaded.settings.sources, name
        assert {s.region for s in loaded.settings.sources} >= {"全国", "香港", "台湾"}


def test_shipped_schema_is_current() -> None:
    shipped = (ROOT / "config" / "feedhub.schema.json").read_text(encoding="utf-8")
    assert json.loads(shipped) == json.loads(json_schema()), (
        "config/feedhub.schema.json is stale: "
        "run `feedhub config-schema > config/feedhub.schema.json`"
    )


def test_check_command_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD, encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("section: gushi", "section: nowhere"), encoding="utf-8")
    run = [sys.executable, "-m", "feedhub", "--config"]
    ok = subprocess.run([*run, str(good), "check"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "1 sources" in ok.stdout
    failed = subprocess.run([*run, str(bad), "check"], capture_output=True, text=True)
    assert failed.returncode == 1
    assert f"{bad}:18: sources[0] (id=linyi).section: unknown section" in failed.stderr


def test_config_schema_command_prints_json_schema() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "feedhub", "config-schema"], capture_output=True, text=True
    )
    assert out.returncode == 0
    schema = json.loads(out.stdout)
    assert schema["additionalProperties"] is False
    assert "sources" in schema["properties"]
