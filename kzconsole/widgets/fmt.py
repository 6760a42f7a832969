"""Formatting shared by the console's widgets: statuses, counts, durations, times.

Everything here is readable without colour: statuses carry a symbol and a word, bars use full and
light blocks (present in the Linux console font), so a monochrome terminal or a screen reader of the
capture loses nothing.
"""

from __future__ import annotations

import time
from typing import Any

from kzconsole.widgets import glyphs

# status value -> (the Glyphs attribute of its symbol, short label)
STATUS_LOOK: dict[str, tuple[str, str]] = {
    "pending": ("pending", "pending"),
    "queued": ("queued", "queued"),
    "executing": ("executing", "executing"),
    "stopping": ("stopped", "stopping"),
    "success": ("ok", "success"),
    "failure": ("failed", "failure"),
    "partial": ("partial", "partial"),
    "stopped": ("stopped", "stopped"),
    "internal_error": ("warning", "int_error"),
}


# What the operator sees as the job's state: the stored status, refined by the bookkeeping the
# contract does not name (a pending job that was started is queued; a running one asked to stop).
def display_status(job: Any) -> str:
    status = job.status.value
    if status == "pending" and job.queued_at is not None:
        return "queued"
    if status == "executing" and job.stop_requested:
        return "stopping"
    return status


def status_label(state: str) -> str:
    glyph, label = STATUS_LOOK.get(state, ("", state))
    symbol = getattr(glyphs.G, glyph, "?") if glyph else "?"
    return f"{symbol} {label}"


def compact_number(n: int | float | None) -> str:
    """At most 4 characters below a billion: 999, 2.5k, 25k, 999k, 1.2M, 12M (rounded down, so
    a count never shows more than was done)."""
    if n is None:
        return "-"
    n = int(n)
    a = abs(n)
    if a < 1000:
        return str(n)
    if a < 10_000:
        return f"{a // 100 / 10:.1f}k"
    if a < 1_000_000:
        return f"{a // 1000}k"
    if a < 10_000_000:
        return f"{a // 100_000 / 10:.1f}M"
    if a < 1_000_000_000:
        return f"{a // 1_000_000}M"
    return f"{a // 1_000_000_000}G"


def plural(n: int, word: str) -> str:
    """``1 row``, ``2 rows``, ``1,000 rows``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def grouped(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def rate(rows_per_second: float | None) -> str:
    if rows_per_second is None or rows_per_second <= 0:
        return "-"
    if rows_per_second < 10:
        return f"{rows_per_second:.1f}/s"
    return f"{compact_number(rows_per_second)}/s"


def short_time(ts: float | None, now: float) -> str:
    """Local time: HH:MM:SS today, MM-DD HH:MM otherwise (11 cells at most)."""
    if ts is None:
        return "-"
    t = time.localtime(ts)
    if time.strftime("%Y-%m-%d", t) == time.strftime("%Y-%m-%d", time.localtime(now)):
        return time.strftime("%H:%M:%S", t)
    return time.strftime("%m-%d %H:%M", t)


def full_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def bar_cells(
    success: int, failure: int, total: int | None, done: int, finished: bool, width: int
) -> tuple[int, int, int] | None:
    """How many cells of a ``width``-cell bar are done (ok), failed and to do; None when the
    total is unknown and the job has not finished (an indeterminate bar)."""
    if total:
        fraction = min(1.0, done / total)
    elif finished or total == 0:
        fraction = 1.0
    else:
        return None
    full = round(fraction * width)
    bad = min(full, max(1, round(full * failure / done))) if done and failure else 0
    return full - bad, bad, width - full


def job_elapsed(job: Any, now: float) -> float | None:
    if job.start_timestamp is None:
        return None
    end = job.end_timestamp if job.end_timestamp is not None else now
    return max(0.0, end - job.start_timestamp)


def live_counts(job: Any, live: Any | None) -> tuple[int, int, int | None, int]:
    """(success, failure, total, rows_done) from the live progress when newer than the record."""
    if live is not None and job.status.value == "executing":
        return live.success, live.failure, live.total if live.total is not None else job.total_count, live.rows_done
    return job.success_count, job.failure_count, job.total_count, job.success_count + job.failure_count


def job_rate(job: Any, live: Any | None, now: float) -> float | None:
    if live is not None and job.status.value == "executing" and live.rows_per_second > 0:
        return live.rows_per_second
    elapsed = job_elapsed(job, now)
    _success, _failure, _, done = live_counts(job, live)
    if not elapsed or not done:
        return None
    return done / elapsed


def fit_parts(parts: list[tuple[str, int]], width: int, sep: str = " · ") -> str:
    """Join ``(text, priority)`` parts with ``sep`` in their order, keeping the highest
    priorities that fit ``width``: each part, highest priority first, is kept if it fits beside
    those kept (a long part left out leaves room for a shorter one of a lower priority; leaving
    out the lowest until the line fitted dropped a short part that fitted once a long one was
    gone). A part is never cut in the middle, except the one left when even it alone does not fit."""
    kept = [p for p in parts if p[0]]
    if len(sep.join(t for t, _ in kept)) > width and kept:
        chosen: set[int] = set()
        used = 0
        for i in sorted(range(len(kept)), key=lambda i: (-kept[i][1], i)):
            extra = len(kept[i][0]) + (len(sep) if chosen else 0)
            if used + extra <= width:
                chosen.add(i)
                used += extra
        if not chosen:
            chosen = {min(range(len(kept)), key=lambda i: (-kept[i][1], i))}
        kept = [kept[i] for i in sorted(chosen)]
    line = sep.join(t for t, _ in kept)
    if len(line) > width:
        line = line[: max(0, width - 1)] + glyphs.G.ellipsis if width > 0 else ""
    return line


def add_fitted_columns(
    table: Any,
    columns: tuple[tuple[str, str, int], ...],
    available: int,
    *,
    minimum: int,
    maximum: int,
    margin: int = 2,
) -> int:
    """Add ``(key, label, width)`` columns to a DataTable; the one column of width 0 takes what the
    terminal leaves (between ``minimum`` and ``maximum``). Returns that width. Fixed widths keep
    the table from measuring every cell (slow, see STACK.md)."""
    fixed = sum(w for _, _, w in columns) + 2 * len(columns) + margin
    flexible = max(minimum, min(maximum, available - fixed))
    for key, label, width in columns:
        table.add_column(label, key=key, width=width or flexible)
    return flexible
