"""A deterministic farm of Chinese regional-news RSS 2.0 feeds, served by nginx on loopback.

The polling benchmark needs many feeds that look like the real thing to a parser and to the
story clustering that follows polling: Chinese titles, 1-3 KB HTML descriptions (escaped in some
feeds, CDATA in others), guids both permalink and opaque, ``+0800`` pubDates, several categories,
unrelated items about as dissimilar as real ones (most sentences are varied text drawn from
common characters, a minority use news templates) and a few cross-feed reprints. Every value
comes from a random stream seeded by (seed, feed, item), so the same arguments always give
byte-identical files, any item can be regenerated alone, and a farm on disk can be checked
against its manifest and reused.

Item links point at hosts under the reserved ``.example`` top-level domain: nothing ever
resolves them, and nothing in the benchmark fetches them.

nginx serves the files as a real news site would: strong ETag and Last-Modified from the file,
304 to If-None-Match / If-Modified-Since, keep-alive. It listens on several 127.0.0.N addresses so
that a poller's per-host limits apply as they do against real sites. It runs as a child process
with its own configuration, logs and temporary paths in a temporary directory, and is stopped on
the way out whatever happens (and by the kernel if this process dies: PR_SET_PDEATHSIG).

Run alone: ``python bench/farm.py OUT_DIR --feeds 2000 --items 20`` writes the files;
add ``--serve SECONDS`` to also serve them and print the URLs of the first feeds.
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import gzip
import http.client
import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import SplitResult, urlsplit
from xml.sax.saxutils import escape

CST = timezone(timedelta(hours=8))
BASE_TIME = datetime(2025, 11, 25, 18, 0, tzinfo=CST)
MANIFEST = "farm.json"
FARM_VERSION = 2

REGIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("广东", "gd", ("广州", "深圳", "佛山", "东莞", "珠海", "汕头", "湛江", "惠州")),
    ("浙江", "zj", ("杭州", "宁波", "温州", "绍兴", "嘉兴", "台州", "金华", "湖州")),
    ("江苏", "js", ("南京", "苏州", "无锡", "常州", "南通", "扬州", "徐州", "盐城")),
    ("四川", "sc", ("成都", "绵阳", "德阳", "宜宾", "南充", "泸州", "乐山", "达州")),
    ("湖北", "hb", ("武汉", "宜昌", "襄阳", "荆州", "黄石", "十堰", "孝感", "恩施")),
    ("山东", "sd", ("济南", "青岛", "烟台", "潍坊", "临沂", "淄博", "济宁", "威海")),
    ("福建", "fj", ("福州", "厦门", "泉州", "漳州", "莆田", "龙岩", "三明", "宁德")),
    ("河南", "ha", ("郑州", "洛阳", "开封", "南阳", "新乡", "许昌", "信阳", "安阳")),
    ("湖南", "hn", ("长沙", "株洲", "湘潭", "衡阳", "岳阳", "常德", "郴州", "怀化")),
    ("陕西", "sn", ("西安", "宝鸡", "咸阳", "渭南", "汉中", "延安", "榆林", "安康")),
    ("云南", "yn", ("昆明", "曲靖", "玉溪", "大理", "丽江", "红河", "保山", "普洱")),
    ("黑龙江", "hl", ("哈尔滨", "齐齐哈尔", "大庆", "牡丹江", "佳木斯", "绥化", "黑河", "伊春")),
)
OUTLETS = tuple("日报 晚报 新闻网 广播电视台 融媒体中心 发布 都市报 在线".split())
CHANNELS = tuple("要闻 本地 民生 经济 政务 社会 文旅 区县 即时新闻 热点".split())
DISTRICTS = tuple(
    "高新区 开发区 新区 老城区 滨江区 经开区 东区 西区 南湖区 北城街道 临港片区 自贸片区 "
    "城关镇 青山镇 白云街道".split()
)
CATEGORIES = tuple(
    "时政 经济 社会 民生 教育 文旅 科技 交通 环保 体育 卫健 农业 法治 城建 就业 文化".split()
)
PROJECTS = tuple(
    "地铁线路 城市更新项目 智慧园区 污水处理厂 保障性租赁住房 跨江大桥 综合交通枢纽 "
    "社区养老服务中心 数据中心 新能源汽车产业园 湿地公园 高标准农田 中小学新校区 "
    "人民医院新院区 冷链物流基地 快速路改造工程".split()
)
ORGS = tuple(
    "市发展改革委 市住建局 市交通运输局 市教育局 市卫健委 市生态环境局 市文广旅局 市人社局 "
    "市农业农村局 市公安局 市市场监管局 区政府".split()
)
ACTIONS = tuple(
    "优化营商环境 推进项目建设 提升公共服务水平 加快产业转型升级 完善基础设施 "
    "加强生态环境保护 促进消费提质扩容 稳定就业基本盘 推动城乡融合发展 强化安全生产监管".split()
)
EVENTS = tuple(
    "正式开工 顺利通车 投入使用 完成验收 进入试运行 启动招标 主体结构封顶 签约落地 开放预约 "
    "迎来首批客流".split()
)
PEOPLE = tuple("王李张刘陈杨黄赵吴周徐孙马朱")
ROLES = tuple("负责人 相关负责人 党组书记 副局长 项目经理 街道办主任 社区书记".split())
UNITS = tuple(
    tuple(pair.split("/"))
    for pair in "个/项目 万人次/游客 公里/道路 套/住房 家/企业 亩/耕地 所/学校 个/充电桩".split()
)

SENTENCES = (
    "{date}，记者从{city}{org}获悉，{city}{district}{project}{event}。",
    "据介绍，该{project}总投资约{money}亿元，占地{area}亩，预计{year}年底全面建成。",
    "{person}{role}表示，下一步将围绕{action}，切实把各项工作落到实处。",
    "截至{month}月底，全市已累计完成{count}{unit}{noun}，同比增长{pct}%。",
    "今年以来，{city}坚持{action}与{action2}并重，全市经济运行总体平稳、稳中向好。",
    "现场，不少市民专程赶来参观，{person}女士说：“以后出门方便多了，孩子上学也近了。”",
    "{district}相关负责人介绍，项目建成后将新增就业岗位{jobs}个，惠及周边{people}万群众。",
    "为保障工程顺利推进，{org}成立专班，实行“一周一调度、一月一通报”工作机制。",
    "{city}{org}提醒广大市民，如有疑问可拨打12345政务服务便民热线咨询。",
    "数据显示，前三季度{city}地区生产总值达{gdp}亿元，增速高于全省平均水平{delta}个百分点。",
    "活动期间，{district}还将推出系列惠民措施，发放消费券{coupon}万元。",
    "据了解，{city}已连续{n}年开展此项工作，累计投入资金{money}亿元。",
    "专家认为，{action}是{city}实现高质量发展的关键一环，需要久久为功。",
    "下一步，{city}将继续深化改革，在{action}方面持续发力，不断增强群众获得感、幸福感。",
)
TITLES = (
    "{city}{district}{project}{event}",
    "{city}：{action}跑出“加速度”",
    "{city}前三季度GDP达{gdp}亿元 同比增长{pct}%",
    "{org}发布通知：{city}{noun}新规{month}月1日起施行",
    "{district}{n}个重点项目集中{event}",
    "{city}{project}最新进展来了",
    "{city}今年累计新增{count}{unit}{noun}",
    "聚焦{action} {city}出台{n}条措施",
    "{city}{district}：小社区里的大民生",
    "{province}{city}：{project}{event} 市民出行更便捷",
)


def _date(rng: random.Random) -> str:
    when = BASE_TIME - timedelta(days=rng.randint(0, 3))
    return f"{when.month}月{when.day}日"


_DRAW: dict[str, Callable[[random.Random], object]] = {
    "district": lambda r: r.choice(DISTRICTS),
    "org": lambda r: r.choice(ORGS),
    "project": lambda r: r.choice(PROJECTS),
    "event": lambda r: r.choice(EVENTS),
    "person": lambda r: r.choice(PEOPLE),
    "role": lambda r: r.choice(ROLES),
    "date": _date,
    "money": lambda r: f"{r.uniform(1, 300):.1f}",
    "area": lambda r: r.randint(20, 3000),
    "year": lambda r: r.choice((2025, 2026, 2027)),
    "month": lambda r: r.randint(1, 12),
    "count": lambda r: r.randint(3, 9000),
    "pct": lambda r: f"{r.uniform(0.5, 25):.1f}",
    "jobs": lambda r: r.randint(100, 20000),
    "people": lambda r: r.randint(1, 80),
    "gdp": lambda r: r.randint(800, 30000),
    "delta": lambda r: f"{r.uniform(0.1, 3):.1f}",
    "coupon": lambda r: r.randint(50, 5000),
    "n": lambda r: r.randint(2, 20),
}
_FIELDS = {
    t: tuple(name for _, name, _, _ in string.Formatter().parse(t) if name)
    for t in SENTENCES + TITLES
}


# Common characters, most frequent first, for the bulk of the body text. Template sentences alone
# made unrelated items share about 28 % of their character 3-grams, where real Chinese feeds share
# about 0.5 %: near-duplicate detection would then see every item as a candidate for every other.
COMMON = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下"
    "过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都"
    "两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重"
    "新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想"
    "已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知"
    "较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造"
    "百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白"
    "教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集"
    "温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿"
    "千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存"
)
_COMMON_WEIGHTS = tuple(
    sum(1.0 / (rank + 8) for rank in range(i + 1)) for i in range(len(COMMON))
)  # cumulative, Zipf-like: frequent characters recur, as in real text
TEMPLATE_SHARE = 0.15  # sentences in the usual news phrasing; the rest is varied text


@dataclass(frozen=True)
class FarmSpec:
    feeds: int = 2000
    items: int = 20
    desc_min: int = 1024  # description size in UTF-8 bytes, drawn per item
    desc_max: int = 3072
    reprints: float = 0.05  # share of items that reprint another feed's item, lightly edited
    seed: int = 20251125
    version: int = FARM_VERSION


def feed_name(index: int) -> str:
    return f"f{index:05d}.xml"


class _Feed:
    """What is fixed for one feed: place, outlet, site and format habits."""

    def __init__(self, spec: FarmSpec, index: int) -> None:
        self.spec = spec
        rng = random.Random(f"feed/{spec.seed}/{index}")
        self.index = index
        self.province, self.code, cities = REGIONS[index % len(REGIONS)]
        self.city = rng.choice(cities)
        self.outlet = self.city + rng.choice(OUTLETS)
        self.channel = rng.choice(CHANNELS)
        self.site = f"{self.code}{index:05d}.news.example"
        self.cdata = index % 2 == 0
        self.permalink_guid = index % 3 != 0

    def fill(self, template: str, rng: random.Random) -> str:
        """Draw only the values the template names: the farm is 100 MB of these."""
        values: dict[str, object] = {}
        for name in _FIELDS[template]:
            if name in values:
                continue
            if name in ("unit", "noun"):
                values["unit"], values["noun"] = rng.choice(UNITS)
            elif name in ("action", "action2"):
                values["action"], values["action2"] = rng.sample(ACTIONS, 2)
            elif name == "province":
                values[name] = self.province
            elif name == "city":
                values[name] = self.city
            else:
                values[name] = _DRAW[name](rng)
        return template.format_map(values)

    def sentence(self, rng: random.Random) -> str:
        if rng.random() < TEMPLATE_SHARE:
            return self.fill(rng.choice(SENTENCES), rng)
        chars = rng.choices(COMMON, cum_weights=_COMMON_WEIGHTS, k=rng.randint(12, 40))
        for at in range(rng.randint(5, 9), len(chars) - 3, rng.randint(6, 12)):
            chars[at] = "，"
        if rng.random() < 0.3:
            chars.insert(rng.randrange(len(chars)), f"{rng.randint(2, 9800)}{rng.choice(UNITS)[0]}")
        if rng.random() < 0.3:
            chars.insert(0, self.city)
        return "".join(chars) + "。"

    def original(self, n: int) -> tuple[str, list[str]]:
        """Title and paragraphs (plain text) of item ``n`` as this feed first published it."""
        rng = random.Random(f"item/{self.spec.seed}/{self.index}/{n}")
        if rng.random() < 0.25:
            title = self.fill(rng.choice(TITLES), rng)
        else:
            words = rng.choices(COMMON, cum_weights=_COMMON_WEIGHTS, k=rng.randint(6, 14))
            title = self.city + "".join(words)
            if rng.random() < 0.4:
                title += rng.choice(EVENTS)
        target = rng.randint(self.spec.desc_min, self.spec.desc_max)
        paragraphs: list[str] = []
        size = 0
        while size < target:
            para = "".join(self.sentence(rng) for _ in range(rng.randint(2, 4)))
            paragraphs.append(para)
            size += len(para.encode()) + 7
        return title, paragraphs


class _Writer:
    """One feed's document. Item text comes from per-item random streams, so that any item can be
    regenerated alone: a reprint in feed *i* copies item *m* of feed *j* without writing *j*."""

    def __init__(self, spec: FarmSpec, index: int) -> None:
        self.spec = spec
        self.feed = _Feed(spec, index)
        self.rng = random.Random(f"times/{spec.seed}/{index}")

    def _item_text(self, n: int) -> tuple[str, list[str], str]:
        """Title, paragraphs and the outlet credited; a reprint credits the original outlet."""
        spec, feed = self.spec, self.feed
        pick = random.Random(f"reprint/{spec.seed}/{feed.index}/{n}")
        if spec.feeds < 2 or pick.random() >= spec.reprints:
            title, paragraphs = feed.original(n)
            return title, paragraphs, feed.outlet
        other = pick.randrange(spec.feeds - 1)
        other += other >= feed.index
        source = _Feed(spec, other)
        title, paragraphs = source.original(pick.randrange(spec.items))
        if pick.random() < 0.5:
            title = pick.choice(("转载｜", "【关注】", "")) + title + pick.choice(("", "（图）"))
        if len(paragraphs) > 1 and pick.random() < 0.5:
            paragraphs = paragraphs[:-1]
        return title, paragraphs, source.outlet

    def _description(self, n: int, paragraphs: list[str], credit: str) -> str:
        feed = self.feed
        rng = random.Random(f"html/{self.spec.seed}/{feed.index}/{n}")
        parts: list[str] = []
        if rng.random() < 0.4:
            parts.append(
                f'<p style="text-align:center"><img src="https://img.{feed.site}/2025/11/'
                f'{feed.index:05d}_{n:03d}.jpg" alt="{escape(feed.city)}" width="600"/></p>'
            )
        for para in paragraphs:
            if rng.random() < 0.2:
                para = f"<strong>{escape(para[:12])}</strong>{escape(para[12:])}"
            else:
                para = escape(para)
            parts.append(f"<p>{para}</p>")
        parts.append(
            f'<p>（来源：<a href="https://{feed.site}/">{escape(credit)}</a>'
            f" 记者 {rng.choice(PEOPLE)}{rng.choice('明华军丽伟芳强静')} 编辑 "
            f"{rng.choice(PEOPLE)}{rng.choice('涛敏超娟磊霞勇燕')}）</p>"
        )
        return "".join(parts)

    def render(self, items: int) -> bytes:
        rng, feed = self.rng, self.feed
        out: list[str] = [
            '<?xml version="1.0" encoding="UTF-8"?>\n',
            '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">\n<channel>\n',
            f"<title>{escape(feed.outlet)} - {escape(feed.channel)}</title>\n",
            f"<link>https://{feed.site}/channel{CHANNELS.index(feed.channel)}/</link>\n",
            f"<description>{escape(feed.province + feed.city)}本地新闻，"
            f"{escape(feed.outlet)}{escape(feed.channel)}频道</description>\n",
            "<language>zh-cn</language>\n",
            f"<lastBuildDate>{format_datetime(BASE_TIME)}</lastBuildDate>\n",
            "<ttl>30</ttl>\n",
            "<generator>farm.py</generator>\n",
        ]
        when = BASE_TIME
        for n in range(items):
            when -= timedelta(minutes=rng.randint(5, 180), seconds=rng.randint(0, 59))
            title, paragraphs, credit = self._item_text(n)
            link = f"https://{feed.site}/{when:%Y-%m/%d}/c_{feed.index:05d}{n:04d}.htm"
            if feed.permalink_guid:
                guid = f"<guid>{link}</guid>"
            else:
                guid = f'<guid isPermaLink="false">{feed.code}-{feed.index:05d}-{n:05d}</guid>'
            html = self._description(n, paragraphs, credit)
            body = f"<![CDATA[{html}]]>" if feed.cdata else escape(html)
            cats = "".join(
                f"<category>{c}</category>" for c in rng.sample(CATEGORIES, rng.randint(1, 3))
            )
            out.append(
                f"<item>\n<title>{escape(title)}</title>\n<link>{link}</link>\n{guid}\n"
                f"<pubDate>{format_datetime(when)}</pubDate>\n"
                f"<author>news@{feed.site} ({escape(feed.outlet)})</author>\n{cats}\n"
                f"<description>{body}</description>\n</item>\n"
            )
        out.append("</channel>\n</rss>\n")
        return "".join(out).encode()


def render_feed(spec: FarmSpec, index: int) -> bytes:
    """The bytes of feed ``index``; the same for the same spec, always."""
    return _Writer(spec, index).render(spec.items)


def write_farm(root: Path, spec: FarmSpec, *, gzip_copies: bool = False) -> list[str]:
    """Write every feed under ``root`` (reusing a farm whose manifest matches) and return the
    file names relative to ``root``, in feed order.

    The manifest is written last, so an interrupted run leaves a farm that is not reused.
    """
    names = [feed_name(i) for i in range(spec.feeds)]
    manifest = root / MANIFEST
    wanted = {**asdict(spec), "gzip": gzip_copies}
    if manifest.exists():
        try:
            if json.loads(manifest.read_text()) == wanted:
                return names
        except ValueError:
            pass
        manifest.unlink()
    root.mkdir(parents=True, exist_ok=True)
    mtime = BASE_TIME.timestamp()
    for i, name in enumerate(names):
        data = render_feed(spec, i)
        path = root / name
        path.write_bytes(data)
        if gzip_copies:
            gz = root / f"{name}.gz"
            gz.write_bytes(gzip.compress(data, compresslevel=6, mtime=0))
        # A fixed mtime gives fixed ETag and Last-Modified values from nginx, run after run.
        os.utime(path, (mtime, mtime))
    manifest.write_text(json.dumps(wanted))
    return names


# --- serving ----------------------------------------------------------------------------------

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
INSTALL_HINT = "nginx is missing: install it with `apt-get update && apt-get install -y nginx`"


class FarmError(RuntimeError):
    """The farm could not be set up; the message says what to do."""


def check_loopback(url: str) -> str:
    """Refuse any URL whose host is not a literal 127.0.0.0/8 address: the benchmark sends
    thousands of requests, and they must never leave this machine."""
    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise FarmError(f"{url}: only literal 127.0.0.0/8 addresses are allowed") from None
    if address not in LOOPBACK:
        raise FarmError(f"{url}: {address} is outside 127.0.0.0/8")
    return url


def find_nginx(install: bool = True) -> str:
    """The nginx binary; installed from Debian when missing and running as root."""
    found = shutil.which("nginx") or next(
        (c for c in NGINX_CANDIDATES if os.access(c, os.X_OK)), None
    )
    if found:
        return found
    if not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        raise FarmError(INSTALL_HINT)
    print("nginx not found: installing it with apt-get (running as root)", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "nginx"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise FarmError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}\n{INSTALL_HINT}")
    return find_nginx(install=False)


def die_with_parent() -> None:
    """In the child before exec: ask the kernel to SIGTERM it when this process dies, so that no
    server outlives a killed benchmark."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port(hosts: list[str]) -> int:
    """A TCP port free on every address (picked now; a small race is accepted)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = int(probe.getsockname()[1])
        try:
            for host in hosts[1:]:
                with socket.socket() as other:
                    other.bind((host, port))
        except OSError:
            continue
        return port
    raise FarmError("no TCP port free on all farm addresses")


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 4096; }}
http {{
    log_format bench '$server_addr $status $connection $msec $body_bytes_sent $request_time '
                     '"$request"';
    access_log {tmp}/access.log bench;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ application/rss+xml xml; }}
    default_type application/octet-stream;
    charset utf-8;
    charset_types application/rss+xml;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 100000;
    server_tokens off;
    {gzip}
    server {{
{listen}
        server_name _;
        root {root};
        location / {{ try_files $uri =404; }}
    }}
}}
"""


class NginxFarm:
    """nginx serving ``root`` on 127.0.0.1..N: ``with NginxFarm(...) as farm: farm.url(i)``."""

    def __init__(
        self, root: Path, names: list[str], *, hosts: int = 8, workers: int = 1, gzip_static: bool
    ) -> None:
        if not 1 <= hosts <= 254:
            raise FarmError("hosts must be between 1 and 254")
        self.root = root.resolve()
        self.names = names
        self.addresses = [f"127.0.0.{n}" for n in range(1, hosts + 1)]
        self.workers = workers
        self.gzip_static = gzip_static
        self.tmp = Path(tempfile.mkdtemp(prefix="feedhub-nginx-"))
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def access_log(self) -> Path:
        return self.tmp / "access.log"

    def url(self, index: int) -> str:
        host = self.addresses[index % len(self.addresses)]
        return check_loopback(f"http://{host}:{self.port}/{self.names[index]}")

    def urls(self) -> list[str]:
        return [self.url(i) for i in range(len(self.names))]

    def start(self) -> None:
        binary = find_nginx()
        # Workers drop to an unprivileged user when started as root: let them read the files.
        for path in (self.tmp, self.root):
            path.chmod(path.stat().st_mode | 0o755)
        self.port = free_port(self.addresses)
        listen = "\n".join(f"        listen {a}:{self.port};" for a in self.addresses)
        gzip_line = "gzip_static on; gzip_vary on;" if self.gzip_static else "gzip off;"
        conf = self.tmp / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                workers=self.workers, tmp=self.tmp, gzip=gzip_line, listen=listen, root=self.root
            )
        )
        self.proc = subprocess.Popen(
            [binary, "-p", str(self.tmp), "-c", str(conf), "-e", str(self.tmp / "error.log")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        atexit.register(self.stop)
        deadline = time.monotonic() + 10
        pending = list(self.addresses)
        while pending:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise FarmError(f"nginx exited ({self.proc.returncode}): {err}{self._errors()}")
            if time.monotonic() > deadline:
                raise FarmError(f"nginx did not listen on {pending}{self._errors()}")
            try:
                with socket.create_connection((pending[0], self.port), timeout=0.5):
                    pending.pop(0)
            except OSError:
                time.sleep(0.05)
        self.check()

    def check(self) -> None:
        """One feed per address: 200 with ETag and Last-Modified, then 304 to each validator."""
        for i in range(min(len(self.addresses), len(self.names))):
            parts = urlsplit(self.url(i))
            status, headers = _get(parts, {})
            etag, modified = headers.get("etag"), headers.get("last-modified")
            if status != 200 or not etag or not modified:
                raise FarmError(
                    f"{self.url(i)}: {status}, ETag {etag!r}, Last-Modified {modified!r}"
                )
            for validator in ({"If-None-Match": etag}, {"If-Modified-Since": modified}):
                status, _ = _get(parts, validator)
                if status != 304:
                    raise FarmError(f"{self.url(i)} answered {status} to {validator}, not 304")

    def _errors(self) -> str:
        log = self.tmp / "error.log"
        return f"\n{log.read_text(errors='replace')[-2000:]}" if log.exists() else ""

    def keep_logs(self, target: Path) -> None:
        """Copy the access and error logs out before ``stop`` removes them."""
        target.mkdir(parents=True, exist_ok=True)
        for name in ("access.log", "error.log"):
            if (self.tmp / name).exists():
                shutil.copy2(self.tmp / name, target / f"nginx-{name}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)  # graceful: finish responses, then exit
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> NginxFarm:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _get(parts: SplitResult, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    """A bare http.client GET: no proxy from the environment can ever be involved."""
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        conn.request("GET", parts.path, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def summarize_log(lines: Iterable[str]) -> tuple[dict[str, int], set[str]]:
    """HTTP statuses counted, and the connection serial numbers seen, in lines of the farm's
    access log (format ``addr status connection msec ...``): how the servers saw a cycle."""
    counts: dict[str, int] = {}
    connections: set[str] = set()
    for line in lines:
        fields = line.split(" ", 3)
        if len(fields) >= 3:
            counts[fields[1]] = counts.get(fields[1], 0) + 1
            connections.add(fields[2])
    return counts, connections


def desc_range(text: str) -> tuple[int, int]:
    """``MIN-MAX`` bytes, for argparse."""
    low, _, high = text.partition("-")
    try:
        pair = (int(low), int(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use MIN-MAX, e.g. 1024-3072") from None
    if not 0 <= pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= MIN <= MAX")
    return pair


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--feeds", type=int, default=FarmSpec.feeds)
    parser.add_argument("--items", type=int, default=FarmSpec.items)
    parser.add_argument("--seed", type=int, default=FarmSpec.seed)
    parser.add_argument("--reprints", type=float, default=FarmSpec.reprints)
    parser.add_argument(
        "--desc-bytes", type=desc_range, default=(FarmSpec.desc_min, FarmSpec.desc_max)
    )
    parser.add_argument("--gzip", action="store_true", help="also write .gz copies")
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--serve", type=float, metavar="SECONDS", help="serve for this long")
    args = parser.parse_args(argv)
    spec = FarmSpec(
        args.feeds, args.items, *args.desc_bytes, reprints=args.reprints, seed=args.seed
    )
    start = time.perf_counter()
    names = write_farm(args.out, spec, gzip_copies=args.gzip)
    size = sum((args.out / n).stat().st_size for n in names)
    print(
        f"{len(names)} feeds x {spec.items} items, {size / 2**20:.1f} MiB "
        f"in {time.perf_counter() - start:.1f} s -> {args.out}"
    )
    if args.serve:
        with NginxFarm(args.out, names, hosts=args.hosts, gzip_static=args.gzip) as farm:
            print("\n".join(farm.urls()[: args.hosts]), f"\naccess log: {farm.access_log}")
            time.sleep(args.serve)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
