"""A ClickHouse HTTP endpoint on 127.0.0.1 in front of chDB, that can be made to fail.

No ClickHouse server runs here, so the sink's HTTP path is tested against this: it forwards
each request clickhouse-connect sends (the SQL and, for an insert, the rows after it; the
settings as URL parameters, the insert's de-duplication token among them) to a chDB client of
the test process and returns chDB's bytes. Its `mode` makes it fail as a server does:
- `proxy`: answers like ClickHouse;
- `503`: answers 503 Service Unavailable without doing anything;
- `hang`: reads the request and never answers (the client times out; nothing was done);
- `hang_after`: does the request, then never answers (the client times out although ClickHouse
  did it: a retry must not write the rows twice).
"""

from __future__ import annotations

import sys
import threading
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# URL parameters that are about the HTTP exchange, not ClickHouse settings
TRANSPORT = {"query_id", "database", "default_format", "wait_end_of_query", "session_id",
             "session_timeout", "compress", "decompress", "enable_http_compression",
             "client_protocol_version", "send_progress_in_http_headers",
             "http_headers_progress_interval_ms", "cancel_http_readonly_queries_on_client_close"}


class FakeClickHouse:
    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.mode = "proxy"
        self.requests: Counter[str] = Counter()  # mode -> requests seen in it
        self.inserts: Counter[str] = Counter()  # mode -> inserts seen in it
        self._lock = threading.Lock()
        self._release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                fake.handle(self)

            do_GET = do_POST  # noqa: N815

            def log_message(self, *_args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                # a client killed in the middle of a request (the sink SIGKILLed in a test or
                # the soak) is what these faults are about, not an error of this server
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeClickHouse:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def dsn(self, timeout: int = 3) -> str:
        return f"http://default:@127.0.0.1:{self.port}/?send_receive_timeout={timeout}&compress=false"

    def query(self, sql: str) -> list[Any]:
        """Rows of a query on the backend, between the requests the server forwards to it."""
        with self._lock:
            return list(self.backend.query(sql).result_rows)

    def set_mode(self, mode: str) -> None:
        assert mode in ("proxy", "503", "hang", "hang_after")
        if mode == "proxy":
            self._release.set()
        else:
            self._release.clear()
        self.mode = mode

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        params = {k: v[0] for k, v in urllib.parse.parse_qs(
            urllib.parse.urlparse(request.path).query).items()}
        mode = self.mode
        self.requests[mode] += 1
        sql = params.pop("query", None)
        text = body if sql is None else sql.encode() + b"\n" + body
        if text.lstrip().upper().startswith(b"INSERT"):
            self.inserts[mode] += 1
        if mode == "503":
            self._answer(request, 503, b"Service Unavailable (fake ClickHouse outage)")
            return
        if mode == "hang":
            self._release.wait()
            request.close_connection = True
            return
        settings = {k: v for k, v in params.items() if k not in TRANSPORT}
        try:
            with self._lock:
                out = self.backend.raw_query(text.decode(), settings=settings)
            status = 200
        except Exception as exc:  # noqa: BLE001 - answered as ClickHouse answers errors
            out, status = str(exc).encode(), 500
        if mode == "hang_after":
            self._release.wait()
            request.close_connection = True
            return
        self._answer(request, status, out)

    @staticmethod
    def _answer(request: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        try:
            request.send_response(status)
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            request.wfile.write(body)
        except OSError:
            pass  # the client gave up
