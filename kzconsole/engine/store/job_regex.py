"""The regular expressions of a job query (``JobQuery.regex``): checked once for what would hurt
(length, back-references, nested repetitions), matched in Python by SQLite's ``kz_regexp`` and by
``JobQuery.matches``, and the literal text every match must contain, which SQL tests first."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["ASCII_LOWER", "regex_program", "regex_problem", "regexp_match", "required_literals"]

# SQL's lower() (SQLite's, at least) folds ASCII letters only; Python's side must fold the same.
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

_REGEX_MAX = 500


def regex_program(pattern: str) -> str:
    """The pattern as matched against the lower-cased text: its ASCII letters lower-cased (escapes
    kept: ``\\D`` is not ``\\d``), which lets ``re`` use its fast literal search; ``(?i)`` in front
    instead when that is not exact (non-ASCII letters, character codes)."""
    if pattern.isascii() and not re.search(r"\\[xuUN0-7]", pattern):
        out = []
        chars = iter(pattern)
        for c in chars:
            if c == "\\":
                out.append(c)
                out.append(next(chars, ""))
            else:
                out.append(c.translate(ASCII_LOWER))
        return "".join(out)
    return "(?i)" + pattern


@functools.lru_cache(maxsize=64)
def _compiled(program: str) -> Any:
    return re.compile(program).search


def regexp_match(program: str, text: str | None) -> bool:
    """SQLite's ``kz_regexp(program, text)``: ``program`` is what :meth:`Dialect.regex` bound."""
    return text is not None and _compiled(program)(text) is not None


def required_literals(program: str) -> list[str] | None:
    """Pieces of text one of which every match of ``program`` contains (a top-level alternation
    gives one per branch), for a cheap first test; None when there is no such piece worth it."""
    if "(?" in program:  # inline flags (case, verbose...) change what a literal matches
        return None
    try:
        from re import _parser as sre_parse  # type: ignore[attr-defined]

        items = list(sre_parse.parse(program))
    except (ImportError, re.error, RecursionError, OverflowError):
        return None  # no prefilter then; the expression itself was checked
    if len(items) == 1 and items[0][0] is sre_parse.BRANCH:
        runs = [_longest_literal(branch, sre_parse) for branch in items[0][1][1]]
    else:
        runs = [_longest_literal(items, sre_parse)]
    return runs if all(len(run) >= 2 for run in runs) else None


def _longest_literal(items: Any, sre_parse: Any) -> str:
    """The longest run of characters a match of the sequence ``items`` must contain."""
    best = run = ""
    for op, arg in _flat(items, sre_parse):
        if op is sre_parse.LITERAL:
            run += chr(arg)
            continue
        if op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT):
            low, high, body = arg
            body = list(body)
            if low >= 1 and len(body) == 1 and body[0][0] is sre_parse.LITERAL:
                char = chr(body[0][1])
                run += char * low
                if high == low:
                    continue  # c{3}: exactly, the run goes on
                best = max(best, run, key=len)
                run = char  # the last of the repeated characters touches what follows
                continue
        best = max(best, run, key=len)
        run = ""
    return max(best, run, key=len)


def _flat(items: Any, sre_parse: Any) -> Iterator[tuple[Any, Any]]:
    for op, arg in items:
        if op is sre_parse.SUBPATTERN and not arg[1] and not arg[2]:
            yield from _flat(arg[3], sre_parse)  # (abc)d: the group's characters touch d
        else:
            yield op, arg


def regex_problem(pattern: str) -> str | None:
    """What is wrong with ``pattern`` as a query's ``regex`` (for the operator), or None."""
    if len(pattern) > _REGEX_MAX:
        return f"regex: at most {_REGEX_MAX} characters, not {len(pattern)}"
    try:
        parsed = re.compile(pattern)
    except re.error as exc:
        return f"regex: {pattern!r} is not a regular expression: {exc}"
    if parsed.groups and re.search(r"\\[1-9]", pattern):
        return f"regex: {pattern!r}: back-references are not supported"
    if _nested_repeat(pattern):
        # (a+)+ and the like take exponential time on a long enough text: the store's thread
        # would never come back. PostgreSQL's engine does not backtrack so, but one rule for both.
        return (
            f"regex: {pattern!r} repeats a repetition (such as (a+)*), which can take forever; "
            "write it without the nesting"
        )
    return None


def _nested_repeat(pattern: str) -> bool:
    try:
        from re import _parser as sre_parse  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - a Python without it: no check, as PostgreSQL
        return False
    repeats = {sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, getattr(sre_parse, "POSSESSIVE_REPEAT", None)}

    def walk(items: Any, inside: bool) -> bool:
        for op, arg in items:
            if op in repeats:
                _low, high, body = arg
                unbounded = high is sre_parse.MAXREPEAT or high > 50
                if inside and unbounded:
                    return True
                if walk(body, inside or unbounded):
                    return True
            elif (
                (op is sre_parse.SUBPATTERN and walk(arg[-1], inside))
                or (op is sre_parse.BRANCH and any(walk(branch, inside) for branch in arg[1]))
                or (op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT) and walk(arg[1], inside))
            ):
                return True
        return False

    return walk(sre_parse.parse(pattern), False)
