"""JobQuery as a value: what it accepts, how it says no, and its Python meaning (no store here; the
store side is the job query section of tests/store/contract.py)."""

from __future__ import annotations

import base64

import pytest

from kzconsole.engine.models import JobStatus
from kzconsole.engine.store.job_query import SORTS, InvalidQuery, JobQuery
from kzconsole.engine.store.job_regex import regexp_match
from tests.store.contract import NOW, make_job


def test_fields_are_normalised() -> None:
    query = JobQuery(status=JobStatus.PENDING, words="  skel   id2 ", id_prefix="ABCdef", task="")
    assert query.status == ("pending",)
    assert query.words == ("skel", "id2")
    assert query.id_prefix == "abcdef"
    assert query.task is None  # an empty piece filters nothing
    assert JobQuery(status=["success", JobStatus.SUCCESS, "failure"]).status == ("success", "failure")
    assert JobQuery(status=[]).status == ()
    assert JobQuery(status=None).status is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"status": "bogus"}, r"status: unknown status 'bogus' \(valid: pending, executing, success,"),
        ({"status": ["pending", "Pending"]}, "unknown status 'Pending'"),
        ({"sort": "colour"}, r"sort: unknown column 'colour' \(one of: created, id, status,"),
        ({"limit": -1}, "limit: expected a whole number >= 0, not -1"),
        ({"limit": True}, "limit: expected a whole number"),
        ({"offset": 1.5}, "offset: expected a whole number"),
        ({"now": float("nan")}, "now: expected a time"),
        ({"regex": "(unclosed"}, "regex: '\\(unclosed' is not a regular expression"),
        ({"regex": "x" * 501}, "regex: at most 500 characters"),
        ({"regex": "(a+)+$"}, r"repeats a repetition"),
        ({"regex": "(x*y?)*z"}, r"repeats a repetition"),
        ({"regex": r"(a)\1"}, "back-references"),
        ({"after": (1.0,)}, "after: expected 2 values for sort created"),
        ({"after": ("x", "y")}, "after: 'x' is not a position of sort created"),
        ({"sort": "task", "after": ("a", 1, 2.0, "id")}, "after: 1 is not a position of sort task"),
        ({"after": (float("inf"), "id")}, "not a position"),
        ({"words": ["ok", 3]}, "words: expected text"),
        ({"account_id": 12}, "account_id: expected text"),
    ],
)
def test_bad_values_say_what_and_where(fields: dict, message: str) -> None:
    with pytest.raises(InvalidQuery, match=message):
        JobQuery(**fields)


def test_invalid_query_is_a_value_error() -> None:
    assert issubclass(InvalidQuery, ValueError)


def test_a_bounded_repetition_inside_another_is_fine() -> None:
    JobQuery(regex=r"(ab{2,3})+")
    JobQuery(regex=r"^[0-9a-f]{8}(-[0-9a-f]{4}){3}")
    JobQuery(regex=r"fail|partial")


def test_natural_directions_and_replace() -> None:
    assert JobQuery().descending is True
    assert JobQuery(sort="task").descending is False
    assert JobQuery(sort="task", descending=True).descending is True
    query = JobQuery(sort="task", descending=True, after=("a", "b", NOW, "id"))
    moved = query.replace(sort="rate")
    assert moved.descending is True and moved.after is None  # the new column's direction; no position
    assert query.replace(limit=5).after == query.after
    assert JobQuery.of(None, status="pending") == JobQuery(status="pending")
    assert JobQuery.of(query) is query
    with pytest.raises(TypeError):
        JobQuery.of({"status": "pending"})  # type: ignore[arg-type]


def test_every_sort_has_a_position() -> None:
    job = make_job("j1", start_timestamp=NOW + 1, total_count=10, success_count=4)
    for name in SORTS:
        query = JobQuery(sort=name, now=NOW + 5)
        position = query.position(job)
        assert JobQuery(sort=name, after=position).after == position  # a valid `after`
    assert JobQuery(sort="duration", now=NOW + 5).position(job) == (4.0, NOW, "j1")
    assert JobQuery(sort="rate", now=NOW + 5).position(job) == (1.0, NOW, "j1")
    assert JobQuery(sort="progress").position(job) == (0.4, NOW, "j1")
    with pytest.raises(InvalidQuery, match="needs `now`"):
        JobQuery(sort="duration").position(job)
    with pytest.raises(InvalidQuery, match="pin `now`"):
        JobQuery(sort="rate").next_page(job)


def test_matches_words_regex_and_invert() -> None:
    job = make_job(
        "0f3a9c",
        category="Numbers",
        action="dedupe",
        account_id="acct-B",
        file_name="Batch 7.CSV",
        status=JobStatus.PARTIAL,
    )
    assert JobQuery(words=["numbers/DED", "acct-b", "7.csv", "0F3A"]).matches(job)
    assert not JobQuery(words=["partial"]).matches(job)  # the status is not text: status= says it
    assert not JobQuery(words=["numbers", "nothing"]).matches(job)
    assert JobQuery(words=["nothing"], invert=True).matches(job)
    assert not JobQuery(words=["numbers"], invert=True).matches(job)
    assert JobQuery(regex=r"^0f3a\w+ numbers/").matches(job)
    assert JobQuery(regex=r"BATCH \d\.csv$").matches(job)
    assert not JobQuery(regex=r"\D{7}", words=["zzz"]).matches(job)
    # invert applies to the words and the regex only: the account scope still holds.
    assert not JobQuery(account_id="acct-a", words=["zzz"], invert=True).matches(job)
    assert JobQuery(task="BERS/de", account_part="CCT-").matches(job)
    assert not JobQuery(status=["success"]).matches(job)


def test_regex_escapes_keep_their_meaning() -> None:
    # The pattern is lower-cased for speed; an escape's letter is not (\D is not \d).
    assert JobQuery(regex=r"^\D+$").matches(make_job("abc", category="x", action="y", file_name="z"))
    assert not JobQuery(regex=r"^\D+$").matches(make_job("a1c", category="x", action="y", file_name="z"))
    assert JobQuery(regex=r"\x41BC").matches(make_job("abc"))  # a character code: matched case-blind
    assert JobQuery(regex="ÉTÉ").matches(make_job("j", file_name="été.csv"))  # (?i): any letter
    assert not JobQuery(words=["ÉTÉ"]).matches(make_job("j", file_name="été.csv"))  # words: ASCII, as SQL
    assert regexp_match("a", None) is False


def test_page_tokens_are_opaque_and_checked() -> None:
    job = make_job("j7", created=NOW + 7)
    query = JobQuery(account_id="acct-a", limit=50)
    token = query.page_token(job)
    assert token.isascii() and "=" not in token and "/" not in token and "+" not in token
    resumed = query.resume(token)
    assert resumed.after == (NOW + 7, "j7") and resumed.account_id == "acct-a"
    too_deep = base64.urlsafe_b64encode(b"[" * 1400).decode()  # a crafted key: nested past the parser's depth
    for bad in ("", "not base64!", "bm90IGpzb24", "W10", "x" * 5000, too_deep):
        with pytest.raises(InvalidQuery, match="start_key: not a key this server gave"):
            query.resume(bad)
    with pytest.raises(InvalidQuery, match="start_key: a key of another order"):
        JobQuery(sort="task").resume(token)
    live = JobQuery(sort="duration", now=NOW + 100)
    running = make_job("r1", start_timestamp=NOW + 40)
    again = live.resume(live.page_token(running))
    assert again.now == NOW + 100 and again.after == (60.0, NOW, "r1")


def test_from_the_end_is_the_same_page_reversed() -> None:
    rows = list(range(100))  # a listing of 100 rows, in order
    for offset, limit in ((60, 10), (95, 10), (99, 1), (51, None), (100, 5), (70, 0)):
        flipped = JobQuery(offset=offset, limit=limit).from_the_end(100)
        assert flipped is not None and flipped.descending is False
        backwards = rows[::-1][flipped.offset :][: flipped.limit]
        assert backwards[::-1] == rows[offset:][:limit], (offset, limit)
    assert JobQuery(offset=50, limit=10).from_the_end(100) is None  # the first half: as it is
    assert JobQuery(offset=90, after=(NOW, "x")).from_the_end(100) is None
