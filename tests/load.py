"""A small load generator (standard library only) for checking that a deploy drops no request.

    with Load("http://10.0.0.2/", clients=20) as load:
        time.sleep(2)
        deploy()
        time.sleep(2)
    print(load.report())
    assert load.non_2xx == 0 and load.errors == 0

Each client is a thread that loops GET on the URL until the context exits or `max_duration` seconds have
passed, whichever comes first, so it always ends by itself. Every request is recorded: when it started,
its latency, its status (or the connection error: refused, reset, closed, timeout...) and which release
served it (`Release: X` in the page).

By default every request opens its own connection (`Connection: close`): a server closing an *idle*
keep-alive connection (nginx does when its old workers exit on reload) is retried by every real client,
so counting it would measure the client, not the deploy. `keepalive=True` reuses connections instead,
and then such a close does count as an error.
"""

from __future__ import annotations

import http.client
import math
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

RELEASE = re.compile(rb"Release: ([A-Za-z0-9_.-]+)")


@dataclass(frozen=True)
class Sample:
    """One request: started at `start` (monotonic seconds), answered or failed `latency` seconds later."""
    client: int
    start: float
    latency: float
    status: int | None          # None: no HTTP answer (see error)
    release: str | None         # the `Release: X` of the page, if any
    error: str | None = None    # e.g. "ConnectionRefusedError: [Errno 111] Connection refused"

    @property
    def end(self) -> float:
        return self.start + self.latency

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Load:
    """`clients` threads GETting `url` in a loop while the context is open (at most `max_duration` s)."""

    def __init__(self, url: str, clients: int = 20, host_header: str | None = None,
                 max_duration: float = 120.0, timeout: float = 10.0, keepalive: bool = False):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {url}")
        self.url, self.clients, self.host_header = url, clients, host_header
        self.max_duration, self.timeout, self.keepalive = max_duration, timeout, keepalive
        self._scheme, self._netloc = parts.scheme, parts.netloc
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.samples: list[Sample] = []
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.expired = False    # True when max_duration ended the load before the context did

    # -- running

    def __enter__(self) -> Load:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._deadline = self.started_at + self.max_duration
        for n in range(self.clients):
            t = threading.Thread(target=self._client, args=(n,), name=f"load-{n}", daemon=True)
            self._threads.append(t)
            t.start()

    def stop(self) -> None:
        self.expired = time.monotonic() >= self._deadline
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        self.stopped_at = time.monotonic()
        self.samples.sort(key=lambda s: s.start)

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        return cls(self._netloc, timeout=self.timeout)

    def _client(self, n: int) -> None:
        headers = {"Connection": "keep-alive" if self.keepalive else "close", "User-Agent": "pinned-load"}
        if self.host_header:
            headers["Host"] = self.host_header
        conn = None
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            if conn is None:
                conn = self._connection()
            start = time.monotonic()
            status = release = error = None
            try:
                conn.request("GET", self._path, headers=headers)
                response = conn.getresponse()
                body = response.read()
                status = response.status
                found = RELEASE.search(body)
                release = found.group(1).decode() if found else None
                if not self.keepalive or response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:   # refused, reset, closed, timeout, ...
                error = f"{type(exc).__name__}: {exc}"
                conn.close()
                conn = None
            sample = Sample(n, start, time.monotonic() - start, status, release, error)
            with self._lock:
                self.samples.append(sample)
        if conn is not None:
            conn.close()

    # -- results

    @property
    def requests(self) -> int:
        """Requests made (answered or not)."""
        return len(self.samples)

    @property
    def served(self) -> int:
        """Requests answered 2xx."""
        return sum(1 for s in self.samples if s.ok)

    @property
    def non_2xx(self) -> int:
        return sum(1 for s in self.samples if s.status is not None and not s.ok)

    @property
    def errors(self) -> int:
        """Requests with no HTTP answer: connection refused/reset/closed, timeouts."""
        return sum(1 for s in self.samples if s.status is None)

    @property
    def failures(self) -> int:
        return self.non_2xx + self.errors

    @property
    def worst_latency(self) -> float:
        """Slowest request, answered or failed (a timeout counts with its full wait)."""
        return max((s.latency for s in self.samples), default=0.0)

    def percentile(self, p: float) -> float:
        latencies = sorted(s.latency for s in self.samples)
        if not latencies:
            return 0.0
        return latencies[max(0, math.ceil(p / 100 * len(latencies)) - 1)]

    @property
    def p99_latency(self) -> float:
        return self.percentile(99)

    @property
    def per_release(self) -> dict[str, int]:
        """2xx answers per release (`?` for a 2xx page without a release marker)."""
        return dict(sorted(Counter(s.release or "?" for s in self.samples if s.ok).items()))

    @property
    def statuses(self) -> dict[int, int]:
        return dict(sorted(Counter(s.status for s in self.samples if s.status is not None).items()))

    @property
    def error_kinds(self) -> dict[str, int]:
        return dict(Counter((s.error or "").split(":")[0] for s in self.samples if s.error))

    @property
    def final_release(self) -> str | None:
        """The release of the last 2xx answer to complete."""
        answered = [s for s in self.samples if s.ok]
        return max(answered, key=lambda s: s.end).release if answered else None

    @property
    def longest_gap(self) -> float:
        """Longest time with no request completing (any outcome): a stall shows here."""
        ends = sorted(s.end for s in self.samples)
        if self.started_at is None or not ends:
            return 0.0
        points = [self.started_at, *ends, self.stopped_at or ends[-1]]
        return max(b - a for a, b in zip(points, points[1:]))

    def overlap(self, old: str, new: str) -> float:
        """Seconds from the first `new` answer to the last `old` answer (negative: a clean cut-over)."""
        firsts = [s.start for s in self.samples if s.ok and s.release == new]
        lasts = [s.end for s in self.samples if s.ok and s.release == old]
        return (max(lasts) - min(firsts)) if firsts and lasts else 0.0

    def report(self) -> str:
        duration = (self.stopped_at or time.monotonic()) - (self.started_at or time.monotonic())
        lines = [
            f"{self.url}  clients={self.clients}  duration={duration:.1f}s"
            + ("  (ended by max_duration)" if self.expired else ""),
            f"  requests={self.requests}  served(2xx)={self.served}  non-2xx={self.non_2xx}  "
            f"connection-errors={self.errors}",
            f"  latency: worst={self.worst_latency * 1000:.0f}ms  p99={self.p99_latency * 1000:.0f}ms  "
            f"p50={self.percentile(50) * 1000:.0f}ms  longest-gap={self.longest_gap * 1000:.0f}ms",
            f"  per release: {self.per_release}  final={self.final_release}  statuses={self.statuses}",
        ]
        if self.error_kinds:
            lines.append(f"  errors: {self.error_kinds}")
            seen = []
            for s in self.samples:
                if s.error and s.error not in seen and len(seen) < 3:
                    seen.append(s.error)
            lines += [f"    e.g. {e}" for e in seen]
        return "\n".join(lines)
