"""A small real HTTP server on 127.0.0.1 that serves feeds from a dict, for pipeline tests.

Each path maps to a ``Route``: body bytes, content type, status, an optional delay before the
body. ETag/Last-Modified validators are honoured the way static servers do, so a second poll
gets 304s. Requests are counted per path.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

LAST_MODIFIED = "Tue, 25 Nov 2025 00:00:00 GMT"


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "application/rss+xml; charset=utf-8"
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class FeedServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                server._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FeedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        path = unquote(request.path)  # routes are keyed by the decoded path (非ASCII too)
        with self._lock:
            self.hits[path] += 1
            route = self.routes.get(path)
        if route is None:
            self._send(request, 404, {"Content-Type": "text/plain"}, b"not found")
            return
        if route.delay:
            time.sleep(route.delay)
        etag = '"' + hashlib.sha1(route.body).hexdigest()[:16] + '"'
        headers = {"Content-Type": route.content_type, **route.headers}
        if route.status == 200:
            headers["ETag"] = etag
            headers["Last-Modified"] = LAST_MODIFIED
            if request.headers.get("If-None-Match") == etag:
                self._send(request, 304, {"ETag": etag}, b"")
                return
        self._send(request, route.status, headers, route.body)

    def _send(
        self, request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        with self._lock:
            self.statuses[status] += 1
        try:
            request.send_response(status)
            for name, value in headers.items():
                request.send_header(name, value)
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            if body and status != 304:
                request.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


def rss(title: str, items: list[tuple[str, str, str]], *, encoding: str = "utf-8") -> bytes:
    """An RSS 2.0 document; items are (guid, title, pubDate)."""
    entries = "".join(
        f"<item><guid>{guid}</guid><title>{t}</title>"
        f"<link>https://news.example.cn/a/{guid}.html?utm_source=rss</link>"
        f"<description>&lt;p&gt;{t}，正文。&lt;/p&gt;</description>"
        f"<pubDate>{date}</pubDate></item>"
        for guid, t, date in items
    )
    doc = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n<rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://news.example.cn/</link>{entries}</channel></rss>"
    )
    return doc.encode(encoding)
