"""The faster forms of the parse worker's steps give exactly what the plain forms give.

A parse worker fingerprints and indexes a document's items together (``items_extras``), skips
OpenCC and case folding for text they would leave alone, cuts plain links with one pattern
instead of ``urllib`` and scans bytes instead of text for characters XML forbids. Each shortcut
is checked here against the plain form it stands in for (written out below as it was, where the
module no longer has it) on seeded random inputs built to hit both sides of every shortcut.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import random
import re
import subprocess
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import opencc
import pytest

from feedhub.core import dates, normalize, sketch, textnorm
from feedhub.core.dedupe import DedupeSettings
from feedhub.core.normalize import build_item, canonical_url, content_hash, decode_document
from feedhub.core.searchterms import item_terms, items_terms
from feedhub.core.similarity import Doc, fingerprint, fingerprints
from feedhub.core.textnorm import casefold, clean_plain_text, fold, html_to_text, url_key
from feedhub.models import Item
from feedhub.parse_worker import _with_extras, item_extras, items_extras, parse_job

NOW = datetime(2025, 11, 25, 10, 0, tzinfo=UTC)

_POOL = (
    list("abcxyzABCXYZ0123456789 .,:;!?%-_/()[]'\"#@|©")
    + list("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同")
    + list("臺灣軟體資訊這裡發產業與實從為國際經濟區縣鄉鎮")
    + ["回覆", "深沈", "英哩", "乾隆", "瞭望", "想像"]
    + list("哩坏沈甦瞭藉衹覆")
    + ["\uf900", "\ufa0e", "\u2f00", "𠀀", "𠮷", "😀", "𐐀", "\U0002f800"]
    + list("ＡＢＣａｂｃ０１２３（），．：；！？％\u3000ßİﬁ①Ⅻ℃\u0301\u200b\u00ad\ufeff٣")
    + ["\n", "\n", " ", "\t", "\r\n", "\u2028", "\x00", "\x0b"]
    + ["<p>", "</p>", "<br>", "<div class=x>", "</div>", "<script>x</script>", "&amp;", "&nbsp;"]
    + ["记者 张伟 ", "来源：", "编辑:", "2025-11-25 10:30", "临沂市", "兰陵县", "1,200.50", "03"]
    + ["by john smith", "copyright 2025", "分享到 微信", "扫一扫", "(图)", "【视频】", " - 新浪网"]
)  # fmt: skip


def _text(rng: random.Random, length: int, pool: list[str] = _POOL) -> str:
    return "".join(rng.choice(pool) for _ in range(length))


def _item(rng: random.Random, n: int) -> Item:
    summary = _text(rng, rng.choice((0, 3, 40, 300, 900))) if rng.random() < 0.85 else None
    content = _text(rng, rng.choice((0, 30, 700, 2600))) if rng.random() < 0.3 else None
    link = rng.choice((None, "", f"https://www.site{n % 5}.example/a/{n}?utm_source=x&b=2",
                       f"http://m.news.example/{n}#!/x", "javascript:alert(1)"))  # fmt: skip
    return build_item(
        source_id=f"s{n % 3}",
        entry_id=f"e{n}",
        link=link,
        title=_text(rng, rng.choice((0, 1, 4, 12, 40))),
        author=None,
        summary=summary,
        content=content,
        published=NOW if n % 4 else None,
        updated=None,
        categories=(),
    )


# --- a document's items together -------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        DedupeSettings(),
        DedupeSettings(shingle=1, num_perm=8, sketch_size=3, max_facts=2, lead_tokens=2),
        DedupeSettings(shingle=6, num_perm=1024, sketch_size=1000),
    ],
    ids=["default", "small", "large"],
)
def test_fingerprints_of_a_batch_equal_each_fingerprint(settings: DedupeSettings) -> None:
    rng = random.Random(settings.num_perm)
    for size in (1, 2, 3, 7, 20, 40):
        docs = [
            Doc(
                f"k{n}", f"s{n % 2}", item.title, item.content or item.summary or "", item.link, NOW
            )
            for n, item in enumerate(_item(rng, n) for n in range(size))
        ]
        plains = [html_to_text(doc.text) if n % 3 else None for n, doc in enumerate(docs)]
        made = fingerprints(docs, settings, plains=plains)
        assert [fp.to_bytes() for fp in made] == [
            fingerprint(doc, settings, plain=plain).to_bytes()
            for doc, plain in zip(docs, plains, strict=True)
        ]
        assert made == [fingerprint(doc, settings) for doc in docs]
    assert fingerprints([], settings) == []


def test_fingerprints_of_empty_and_short_texts() -> None:
    settings = DedupeSettings(shingle=4)
    texts = ["", " ", "中", "中文", "中文字", "a b c", "...", "中文字词句", "\n\n"]
    docs = [Doc("k", "s", title, text, None, NOW) for title in ("", "题") for text in texts]
    assert fingerprints(docs, settings) == [fingerprint(doc, settings) for doc in docs]


def test_terms_of_a_batch_equal_each_items_terms() -> None:
    rng = random.Random(3)
    items = [_item(rng, n) for n in range(120)]
    fields = [(item.title, item.summary, item.content) for item in items]
    assert items_terms(fields) == [item_terms(*f) for f in fields]
    texts = [item.content or item.summary or "" for item in items]
    known = [(text, html_to_text(text)) for text in texts]
    assert items_terms(fields, known) == [
        item_terms(*f, known=k) for f, k in zip(fields, known, strict=True)
    ]
    assert items_terms([]) == []
    assert items_terms([("", None, None), ("", "", None)]) == ["", ""]


@pytest.mark.parametrize("dedupe", [None, DedupeSettings()], ids=["terms", "fingerprint"])
@pytest.mark.parametrize("terms", [False, True], ids=["no-terms", "with-terms"])
def test_items_extras_equal_each_items_extras(dedupe: DedupeSettings | None, terms: bool) -> None:
    rng = random.Random(11)
    items = [_item(rng, n) for n in range(60)]
    assert items_extras(items, NOW, dedupe, terms=terms) == [
        item_extras(item, NOW, dedupe, terms=terms) for item in items
    ]


def test_with_extras_is_replace() -> None:
    item = _item(random.Random(1), 1)
    made = _with_extras(item, b"fp", "terms")
    expected = replace(item, fingerprint=b"fp", search_terms="terms")
    assert made == expected
    assert (made.fingerprint, made.search_terms) == (b"fp", "terms")
    assert repr(made) == repr(expected)


def test_parse_job_raises_what_item_by_item_raised() -> None:
    # A lone surrogate (legal in JSON) cannot be fingerprinted: the error is the one the first
    # such item gave when items were done one by one, not one from the batch.
    items = [{"id": "1", "title": "正常", "content_text": "正文"},
             {"id": "2", "title": "中文\ud800標題", "content_text": "臺灣"},
             {"id": "3", "title": "x", "content_text": "a\udfffb"}]  # fmt: skip
    doc = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": items})
    args = (doc.encode(), {}, "https://a.example/f", "s", NOW, "UTC", None)
    with pytest.raises(UnicodeEncodeError) as batch:
        parse_job(*args, DedupeSettings(), True)
    bare = parse_job(*args)
    with pytest.raises(UnicodeEncodeError) as single:
        [item_extras(item, NOW, DedupeSettings(), terms=True) for item in bare.items]
    assert str(batch.value) == str(single.value)
    terms_only = parse_job(*args, None, True)
    assert [i.search_terms for i in terms_only.items] == [
        item_terms(i.title, i.summary, i.content) for i in bare.items
    ]


# --- folding, conversion and case ------------------------------------------------------------


def _reference_to_simplified(text: str) -> str:
    if not re.search("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]", text):
        return text
    return str(textnorm._converter().convert(text))


def _reference_fold(text: str) -> str:
    text = re.sub("[\u200b\u200c\u200d\u2060\ufeff\u00ad]", "", textnorm.nfkc(text))
    return _reference_to_simplified(text.casefold())


def _outcome(function: Callable[[str], str], text: str) -> object:
    try:
        return function(text)
    except UnicodeEncodeError as exc:
        return ("error", str(exc))


def test_fold_and_to_simplified_equal_the_plain_forms() -> None:
    rng = random.Random(5)
    for _ in range(6000):
        text = _text(rng, rng.choice((1, 2, 5, 20, 80)))
        if rng.random() < 0.3:
            text = text.replace("\x00", "").replace("臺", "台")
        if rng.random() < 0.02:
            text += "\ud800"  # OpenCC cannot take it; the error must stay
        assert _outcome(fold, text) == _outcome(_reference_fold, text)
        simplified = textnorm.to_simplified
        assert _outcome(simplified, text) == _outcome(_reference_to_simplified, text)
    # Phrases that change while none of their characters does alone.
    for phrase in ("回覆", "深沈", "英哩", "毛坏", "\uf900兼容"):
        assert textnorm.to_simplified(phrase) == _reference_to_simplified(phrase) != phrase


def test_casefold_equals_str_casefold() -> None:
    for code in [*range(0x10000), *range(0x10000, 0x110000, 97), 0x10400, 0x1E900]:
        char = chr(code)
        assert casefold(char) == char.casefold()
    rng = random.Random(9)
    for _ in range(2000):
        text = _text(rng, rng.choice((1, 10, 100)))
        assert casefold(text) == text.casefold()


def _dump(binary: Path, source: Path, target: Path) -> list[tuple[str, list[str]]]:
    subprocess.run([binary, "-i", source, "-o", target, "-f", "ocd2", "-t", "text"], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    entries = []
    for line in target.read_text(encoding="utf-8").splitlines():
        if line:
            key, values = line.split("\t")
            entries.append((key, values.split(" ")))
    return entries


def test_t2s_shortcut_holds_for_the_installed_dictionaries(tmp_path: Path) -> None:
    """What ``textnorm._changers`` relies on, from OpenCC's own dictionaries: every character
    of a key lies in ``_T2S_RANGES``, and every key that converts to something else holds a
    character that converts alone or one of ``_T2S_PHRASE_ONLY``."""
    assert opencc.__version__ == textnorm._T2S_CHECKED, "check the dictionaries, then update"
    root = Path(opencc.__file__).parent / "clib"
    binary = root / "bin" / "opencc_dict"
    share = root / "share" / "opencc"
    if not binary.is_file() or not (share / "t2s.json").is_file():
        pytest.skip("this OpenCC build ships no opencc_dict or no t2s.json")
    config = json.loads((share / "t2s.json").read_text(encoding="utf-8"))
    files = re.findall(r'"file":\s*"([^"]+)"', json.dumps(config))
    assert files
    converter = opencc.OpenCC("t2s")
    alone = {}
    keys = []
    for name in files:
        for key, values in _dump(binary, share / name, tmp_path / f"{name}.txt"):
            keys.append((key, values))
            for char in key:
                if char not in alone:
                    alone[char] = converter.convert(char) != char
    ranges = textnorm._T2S_RANGES
    assert all(any(low <= ord(c) <= high for low, high in ranges) for c in alone)
    spare = set(textnorm._T2S_PHRASE_ONLY)
    for key, values in keys:
        if values[0] != key:  # OpenCC writes a key's first value
            assert any(alone[c] or c in spare for c in key), key
    assert textnorm._changers() is not None


def test_credit_prefilter_passes_every_credit_line() -> None:
    rng = random.Random(13)
    lines = ["责任编辑:张三", "2025-11-25 10:30 来源:新华社", "by john smith", "© 2025 x",
             "copyright 2025", "reporting by jane", "[来源|人民网]", "٣٣-1-1"]  # fmt: skip
    lines += [_text(rng, rng.choice((1, 5, 30))).strip() for _ in range(5000)]
    for line in filter(None, (line.strip() for line in lines)):
        if textnorm._CREDIT_LINES.match(line):
            assert textnorm._may_be_credit(line), line


def test_clean_plain_text_of_lines_with_and_without_credits() -> None:
    text = "\n".join(["正文第一段", "责任编辑:张三", "by john smith", "2025-11-25 10:30", "完"])
    assert clean_plain_text(text) == "正文第一段\n完"


# --- links -----------------------------------------------------------------------------------

_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def _reference_canonical_url(url: str, base: str | None = None) -> str:
    raw = "".join(url.split())
    if base:
        try:
            raw = urljoin(base, raw)
        except ValueError:
            return raw
    try:
        parts = urlsplit(raw)
    except ValueError:
        return raw
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        return raw
    userinfo, at, hostport = parts.netloc.rpartition("@")
    hostport = hostport.lower()
    if hostport.endswith(_DEFAULT_PORTS[scheme]):
        hostport = hostport[: -len(_DEFAULT_PORTS[scheme])]
    hostport = hostport.replace(".:", ":").rstrip(".")

    def keep(pairs: str) -> str:
        kept = []
        for pair in pairs.split("&"):
            key = unquote(pair.partition("=")[0]).strip().lower()
            tracking = key in normalize.TRACKING_PARAMS or key.startswith(
                normalize.TRACKING_PREFIXES
            )
            if pair and not tracking:
                kept.append(pair)
        return "&".join(kept)

    return urlunsplit(
        (scheme, userinfo + at + hostport, parts.path or "/", keep(parts.query),
         keep(parts.fragment))
    )  # fmt: skip


def _reference_url_key(url: str | None) -> str:
    if not url or not url.strip():
        return ""
    try:
        parts = urlsplit(_reference_canonical_url(url))
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    labels = parts.hostname.split(".")
    if len(labels) > 2 and labels[0] in textnorm._MOBILE_LABELS:
        labels = labels[1:]
    host = ".".join(labels)
    if parts.port is not None and parts.port not in (80, 443):
        host += f":{parts.port}"
    path = parts.path.rstrip("/")
    query = "&".join(sorted(p for p in parts.query.split("&") if p))
    fragment = parts.fragment if parts.fragment.startswith(("!", "/")) else ""
    if not path and not query and not fragment:
        return ""
    return host + path + ("?" + query if query else "") + ("#" + fragment if fragment else "")


def _outcome2(function: Callable[..., str], *args: object) -> object:
    try:
        return function(*args)
    except ValueError as exc:
        return ("error", str(exc))


def _link(rng: random.Random) -> str:
    printable = [chr(c) for c in range(0x21, 0x7F)]
    if rng.random() < 0.2:
        parts = ["http", "https", "HTTP", ":", "//", "/", "?", "#", "&", "=", ";", "@", ".", "[",
                 "]", ":80", ":443", ":8080", ":x", "www", "m", "Example", "中文", " ", "\n",
                 "\x00", "utm_source=x", "user:pw@", "%20", "_"]  # fmt: skip
        return "".join(rng.choice(parts) for _ in range(rng.randint(0, 12)))
    link = rng.choice(("http://", "https://", "http://", "https://", "HTTPS://", "https:/"))
    link += rng.choice(("www.", "m.", "", "wap.", "a.b.", "Www."))
    link += rng.choice(("example", "ex-ample", "127", "a_b", "例子", "example"))
    link += rng.choice((".com", ".cn", "", ".co.uk", ".com.", ":80", ":443", ":8080", ":", ""))
    pieces = [*printable, "utm_source=1", "spm=a", "id=", "&", "=", "a", "%41", " "]
    if rng.random() < 0.7:
        pieces = [*"abc019-_.~%=&/", "utm_source=1", "spm=a", "id=", "From=x"]
    for _ in range(rng.randint(0, 4)):
        link += rng.choice(("/", "/", "?", "#", "&", "#!/", ";"))
        link += "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
    return link


def test_canonical_url_and_url_key_equal_the_urllib_forms() -> None:
    rng = random.Random(21)
    bases = [None, "", "https://base.example/feed/", "http://base.example/x?y#z",
             "http://[::1", "ftp://x/", "https://a.example"]  # fmt: skip
    plain = 0
    for _ in range(20000):
        link, base = _link(rng), rng.choice(bases)
        plain += normalize._PLAIN_URL.fullmatch("".join(link.split())) is not None
        assert _outcome2(canonical_url, link, base) == _outcome2(
            _reference_canonical_url, link, base
        ), (link, base)
        assert _outcome2(url_key, link) == _outcome2(_reference_url_key, link), link
    assert 1000 < plain < 19000  # both sides of the shortcut were taken, often


# --- bytes, hashes and dates -----------------------------------------------------------------


def test_decoding_finds_forbidden_characters_as_the_pattern_does() -> None:
    rng = random.Random(17)
    pieces = [b"<rss>", b"\x00", b"\x01", b"\x08", b"\x0b", b"\x1f", b"\t", b"\n", b"\r", b" ",
              b"\xef\xbb\xbf", b"\xef\xbf\xbe", b"\xef\xbf\xbf", b"\xef\xbf\xbd", b"\x7f",
              "中文".encode(), "\ufffe".encode(), b"abc", b"\xe4", b"&nbsp;"]  # fmt: skip
    for _ in range(5000):
        content = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if content.startswith((b"\x00", b"<\x00")):
            continue  # read as UTF-16 or UTF-32
        has = normalize._ILLEGAL_XML_CHARS.search(text) is not None
        assert normalize._has_illegal_utf8(content) == has, content
        if not content.startswith(codecs.BOM_UTF8):
            expected = normalize._ILLEGAL_XML_CHARS.sub("", text.lstrip("\ufeff \t\r\n"))
            assert decode_document(content).text == expected


def test_content_hash_is_the_chunk_by_chunk_digest() -> None:
    rng = random.Random(19)
    for _ in range(300):
        parts = [rng.choice((None, "", "a", "中文\ud800", "x" * 70, "1:2")) for _ in range(6)]
        digest = hashlib.sha256()
        for part in parts:
            if part is None:
                digest.update(b"-;")
            else:
                data = part.encode("utf-8", "surrogatepass")
                digest.update(b"%d:" % len(data))
                digest.update(data)
        assert content_hash(parts) == digest.hexdigest()


def _reference_parse_date(value: str, tz: object, lang: str | None) -> datetime | None:
    text = re.sub(r"\s+", " ", value.translate(dates._FULLWIDTH)).strip()
    text = dates._COMMENT.sub("", text)
    if not text or len(text) > 64:
        return None
    chinese = dates._is_chinese_context(tz, lang)  # type: ignore[arg-type]
    for pattern in (dates._YMD, dates._RFC822, dates._MDY):
        match = pattern.match(text)
        if match:
            return dates._build(match, tz, chinese)  # type: ignore[arg-type]
    return None


def test_parse_date_reads_what_it_read_before() -> None:
    rng = random.Random(23)
    pool = list("0123456789 :-/.+TZ,()年月日时分") + [
        "Tue", "Nov", "CST", "GMT", "PM", " (CST)", "\u3000", "０", "：", "\t", "\xa0", "\u2028",
        "\x1c", "2025", "11", "25", "08:00:00", "+0800", "UTC+8", "ф", "  ",
    ]  # fmt: skip
    zones = [dates.zone("Asia/Shanghai"), dates.zone("UTC"), dates.zone("America/New_York")]
    for _ in range(20000):
        value = "".join(rng.choice(pool) for _ in range(rng.randint(0, 12)))
        tz, lang = rng.choice(zones), rng.choice((None, "zh-cn", "en"))
        got = dates.parse_date(value, tz, lang=lang)
        assert got == _reference_parse_date(value, tz, lang), value
        assert got is None or got.tzinfo is UTC


def test_sketch_batches_keep_each_texts_tokens() -> None:
    texts = ["中文 words 和 more", "", "x", "中", "第二段 text\n第三行"]
    tokens, bounds, heads = sketch.token_hashes_many(texts, [2, 0, 5, 1, 3])
    for n, text in enumerate(texts):
        alone, head = sketch.split_token_hashes(text, [2, 0, 5, 1, 3][n])
        assert tokens[bounds[n] : bounds[n + 1]].tolist() == alone.tolist()
        assert heads[n] == head
    assert bounds[-1] == tokens.size
