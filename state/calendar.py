"""systemd calendar expressions (`OnCalendar=`), checked before any host is contacted.

Where this machine has `systemd-analyze`, it decides (state.model asks it). Without it, pinned accepts a
well-defined subset and refuses the rest, so nothing a host's systemd would refuse reaches a host:

* a shorthand: minutely, hourly, daily, weekly, monthly, quarterly, semiannually, yearly, annually;
* `[WEEKDAYS ][DATE ]TIME`: WEEKDAYS a comma list of `Mon`…`Sun` or ranges `Mon..Fri`; DATE `Y-M-D` or
  `M-D` with each part `*`, a number, a range `a..b`, a comma list, or `start/step`; TIME `h:m[:s]` with the
  same parts (hour 0–23, minute and second 0–59).
"""

from __future__ import annotations

import re

SHORTHANDS = frozenset({"minutely", "hourly", "daily", "weekly", "monthly", "quarterly", "semiannually", "yearly",
                        "annually"})
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = {d: i for i, d in enumerate(DAYS)} | {n: i for i, n in enumerate(
    ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))}


def _part(text: str, low: int, high: int) -> bool:
    """`*`, n, a..b, a comma list of those, or start/step (each number within [low, high])."""
    for item in text.split(","):
        m = re.fullmatch(r"(\*|\d{1,4})(?:\.\.(\d{1,4}))?(?:/(\d{1,4}))?", item)
        if not m:
            return False
        first, last, step = m.groups()
        numbers = [int(n) for n in (first, last) if n and n != "*"]
        if any(not low <= n <= high for n in numbers) or (step is not None and int(step) == 0):
            return False
        if first == "*" and last is not None or (len(numbers) == 2 and numbers[0] > numbers[1]):
            return False
    return True


def _weekdays(text: str) -> bool:
    for item in text.split(","):
        ends = item.lower().split("..")
        if len(ends) > 2 or any(e not in _DAY_NAMES for e in ends):
            return False
    return True


def subset_error(expression: str) -> str | None:
    """Why `expression` is outside the subset pinned checks itself (None: inside it)."""
    if expression.lower() in SHORTHANDS:
        return None
    words = expression.split()
    if words and re.fullmatch(r"[A-Za-z][A-Za-z.,]*", words[0]):
        if not _weekdays(words[0]):
            return f"{words[0]!r} is not a weekday list (Mon..Sun, e.g. Mon..Fri or Sat,Sun)"
        words = words[1:]
    if len(words) == 2:
        date = words[0].split("-")
        if len(date) == 3 and _part(date[0], 1970, 2199) and _part(date[1], 1, 12) and _part(date[2], 1, 31):
            pass
        elif len(date) == 2 and _part(date[0], 1, 12) and _part(date[1], 1, 31):
            pass
        else:
            return f"{words[0]!r} is not a date (Y-M-D or M-D; each part *, a number, a..b, a,b or start/step)"
        words = words[1:]
    if len(words) != 1:
        return "expected [WEEKDAYS] [DATE] TIME (e.g. 'Mon..Fri *-*-* 03:30:00') or a shorthand such as daily"
    time = words[0].split(":")
    if len(time) not in (2, 3) or not (_part(time[0], 0, 23) and _part(time[1], 0, 59)
                                        and (len(time) == 2 or _part(time[2], 0, 59))):
        return f"{words[0]!r} is not a time (h:m or h:m:s; each part *, a number, a..b, a,b or start/step)"
    return None
