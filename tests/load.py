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

`WriteLoad` writes too: each client POSTs notes with unique texts, GETs the page and a page that writes its
session, and records each answer's status, latency, Retry-After header and release; the texts of the
writes the site acknowledged (201) are what must be found in the database afterwards.
"""

from __future__ import annotations

import http.client
import math
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

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


class ClientThreads:
    """`clients` threads running `self._client(n)` until `stop()` (or the context's end); bounded by
    `max_duration` seconds, which the clients check. Subclasses set the attributes used here."""

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._deadline = self.started_at + self.max_duration
        for n in range(self.clients):
            t = threading.Thread(target=self._client, args=(n,), name=f"{type(self).__name__}-{n}", daemon=True)
            self._threads.append(t)
            t.start()

    def stop(self) -> None:
        self.expired = time.monotonic() >= self._deadline
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        self.stopped_at = time.monotonic()
        self.samples.sort(key=lambda s: s.start)


class Load(ClientThreads):
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

    # -- running: ClientThreads

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


# ------------------------------------------------------------------------------------------ writing load

@dataclass(frozen=True)
class WriteSample:
    """One request of a `WriteLoad` client. kind: "write" (POST /notes/), "read" (GET /), "visit" (GET /visit/,
    a GET that writes the session)."""
    client: int
    kind: str
    start: float
    latency: float
    status: int | None              # None: no HTTP answer (see error)
    release: str | None             # `Release: X` in the body, else the X-Release header
    retry_after: str | None = None  # the Retry-After header, if any
    text: str | None = None         # a write's unique text
    error: str | None = None

    @property
    def end(self) -> float:
        return self.start + self.latency

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def acknowledged(self) -> bool:
        """A write the site said it stored (201), or a visit it counted (200)."""
        return self.status == 201 if self.kind == "write" else (self.kind == "visit" and self.ok)

    @property
    def refused(self) -> bool:
        """Refused the way a write freeze must: 503 with a Retry-After header."""
        return self.status == 503 and self.retry_after is not None

    @property
    def failed(self) -> bool:
        """Not answered, or answered neither 2xx nor a proper refusal (a read is never allowed a refusal)."""
        if self.kind == "read":
            return not self.ok
        return not (self.ok or self.refused)


class WriteLoad(ClientThreads):
    """`clients` threads, each looping: POST a note with a unique text, GET the page, GET the visit page (with
    its own session cookie). Bounded: each client stops after `max_rounds` rounds, after `max_duration`
    seconds, or when the context exits, whichever comes first. Only for the sandbox host's address."""

    def __init__(self, base_url: str, clients: int = 10, max_duration: float = 180.0, max_rounds: int = 5000,
                 timeout: float = 10.0, write_path: str = "/notes/", read_path: str = "/", visit_path: str = "/visit/",
                 tag: str = "w"):
        parts = urlsplit(base_url)
        if parts.scheme != "http":
            raise ValueError(f"not an http URL: {base_url}")
        self.base_url, self.clients, self.max_duration, self.max_rounds = base_url, clients, max_duration, max_rounds
        self.timeout, self.tag = timeout, tag
        self._netloc = parts.netloc
        self.paths = {"write": write_path, "read": read_path, "visit": visit_path}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.samples: list[WriteSample] = []
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.expired = False
        self._deadline = 0.0


    def _request(self, n: int, kind: str, cookie: dict, text: str | None = None) -> WriteSample:
        headers = {"Connection": "close", "User-Agent": "pinned-write-load"}
        if cookie:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookie.items())
        body = None
        if kind == "write":
            body = urlencode({"text": text})
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection(self._netloc, timeout=self.timeout)
        start = time.monotonic()
        status = release = retry_after = error = None
        try:
            conn.request("POST" if kind == "write" else "GET", self.paths[kind], body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            status = response.status
            retry_after = response.getheader("Retry-After")
            found = RELEASE.search(data)
            release = found.group(1).decode() if found else response.getheader("X-Release")
            for header in response.msg.get_all("Set-Cookie") or []:
                jar = SimpleCookie()
                jar.load(header)
                cookie.update({k: m.value for k, m in jar.items()})
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
        return WriteSample(n, kind, start, time.monotonic() - start, status, release, retry_after,
                           text if kind == "write" else None, error)

    def _client(self, n: int) -> None:
        cookie: dict[str, str] = {}
        token = uuid.uuid4().hex[:8]
        for i in range(self.max_rounds):
            for kind in ("write", "read", "visit"):
                if self._stop.is_set() or time.monotonic() >= self._deadline:
                    return
                text = f"{self.tag}-{token}-{n}-{i}" if kind == "write" else None
                sample = self._request(n, kind, cookie, text)
                with self._lock:
                    self.samples.append(sample)

    # -- results

    def of(self, kind: str) -> list[WriteSample]:
        return [s for s in self.samples if s.kind == kind]

    @property
    def acknowledged_texts(self) -> list[str]:
        """The texts of the writes answered 201: each must be in the database that ends up current."""
        return [s.text for s in self.of("write") if s.status == 201]

    @property
    def acknowledged_writes(self) -> int:
        return len(self.acknowledged_texts)

    @property
    def refused_writes(self) -> int:
        """POSTs and session-writing GETs refused with 503 + Retry-After."""
        return sum(1 for s in self.samples if s.kind != "read" and s.refused)

    @property
    def other_5xx(self) -> list[WriteSample]:
        """5xx answers that are not a proper refusal (a 503 without Retry-After counts here)."""
        return [s for s in self.samples if s.status is not None and s.status >= 500 and not s.refused]

    @property
    def write_failures(self) -> list[WriteSample]:
        """Writes and visits neither acknowledged nor properly refused (other statuses, no answer)."""
        return [s for s in self.samples if s.kind != "read" and s.failed]

    @property
    def read_failures(self) -> list[WriteSample]:
        return [s for s in self.of("read") if s.failed]

    @property
    def worst_read_latency(self) -> float:
        return max((s.latency for s in self.of("read")), default=0.0)

    @property
    def releases(self) -> dict[str, int]:
        """2xx answers per release, all kinds (`?`: no release marker)."""
        return dict(sorted(Counter(s.release or "?" for s in self.samples if s.ok).items()))

    def releases_of(self, kind: str) -> dict[str, int]:
        return dict(sorted(Counter(s.release or "?" for s in self.of(kind) if s.ok).items()))

    @property
    def statuses(self) -> dict[str, dict[int, int]]:
        return {kind: dict(sorted(Counter(s.status for s in self.of(kind) if s.status is not None).items()))
                for kind in ("write", "read", "visit")}

    @property
    def longest_refusal(self) -> tuple[float, int]:
        """The freeze as clients saw it: the longest run of refused writes (POSTs and visits, by start time)
        with no write acknowledged in between: (seconds from the first refusal's start to the last one's
        end, refusals in the run)."""
        best = (0.0, 0)
        first = last = None
        count = 0
        for s in (s for s in self.samples if s.kind != "read"):
            if s.refused:
                first = s if first is None else first
                last, count = s, count + 1
                best = max(best, (last.end - first.start, count))
            elif s.acknowledged:
                first, last, count = None, None, 0
        return best

    def report(self) -> str:
        duration = (self.stopped_at or time.monotonic()) - (self.started_at or time.monotonic())
        freeze, refusals = self.longest_refusal
        lines = [
            f"{self.base_url}  clients={self.clients}  duration={duration:.1f}s"
            + ("  (ended by max_duration)" if self.expired else ""),
            f"  writes: acknowledged={self.acknowledged_writes}  refused(503+Retry-After)={self.refused_writes}  "
            f"other-5xx={len(self.other_5xx)}  failed={len(self.write_failures)}",
            f"  reads: {len(self.of('read'))}  failed={len(self.read_failures)}  "
            f"worst latency={self.worst_read_latency * 1000:.0f}ms",
            f"  longest run of refusals (freeze seen by clients): {freeze:.2f}s ({refusals} refusals)",
            f"  releases: {self.releases}  statuses: {self.statuses}",
        ]
        seen: list[str] = []
        for s in self.samples:
            what = s.error or (f"{s.kind} {s.status} retry-after={s.retry_after}" if s.failed else None)
            if what and what not in seen and len(seen) < 5:
                seen.append(what)
        lines += [f"    e.g. {e}" for e in seen]
        return "\n".join(lines)
