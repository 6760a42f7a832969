"""The built-in `numbers` plugin on the files of examples/: normalize, dedupe (exact across a
resume by another engine), summarize, the verifiers and the default_country option."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kzconsole.engine import Engine, JobControl, JobRejected, JobStatus
from kzconsole.engine.clock import Clock
from tests.conftest import make_settings, output_csv, write_csv

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def make_engine(tmp_path):
    engines: list[Engine] = []

    def make(plugin_options: dict | None = None, clock: Clock | None = None, **tasks) -> Engine:
        settings = make_settings(tmp_path, **tasks)
        if plugin_options is not None:
            settings = settings.with_overrides(plugin_options=plugin_options)
        engine = Engine(settings, clock=clock) if clock is not None else Engine(settings)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


def run(engine: Engine, action: str, source: Path, **kw):
    job = engine.add_job("numbers", action, input=source, **kw)
    final = engine.run_job(job.id)
    return final, output_csv(engine, final)


def by_number(out: list[list[str]]) -> dict[str, dict[str, str]]:
    header = out[0]
    return {row[0]: dict(zip(header, row, strict=True)) for row in out[1:]}


# --- normalize ---------------------------------------------------------------------------------


def test_normalize_example(make_engine):
    final, out = run(make_engine(), "normalize", EXAMPLES / "numbers_normalize.csv")
    assert out[0] == [
        "number",
        "country",
        "account_id",
        "e164",
        "national",
        "international",
        "region",
        "type",
        "valid",
        "error",
    ]
    rows = by_number(out)
    assert len(out) - 1 == final.total_count == 20

    gb = rows["+44 20 7946 0958"]
    assert (gb["e164"], gb["national"], gb["international"], gb["region"], gb["type"], gb["valid"], gb["error"]) == (
        "+442079460958",
        "020 7946 0958",
        "+44 20 7946 0958",
        "GB",
        "fixed_line",
        "true",
        "",
    )
    us = rows["(415) 555-2671"]
    assert (us["e164"], us["region"], us["account_id"], us["valid"]) == (
        "+14155552671",
        "US",
        "4a7f3c9e1b2d4f6a8c0e2b4d6f8a0c1e",
        "true",
    )
    assert rows["+1 800 555 0199"]["type"] == "toll_free"
    fr = rows["06 12 34 56 78"]  # a national number in a lowercase country
    assert (fr["e164"], fr["region"], fr["type"]) == ("+33612345678", "FR", "mobile")
    assert (rows["+800 1234 5678"]["region"], rows["+800 1234 5678"]["type"]) == ("001", "toll_free")
    for number in ("+49 1512 3456789", "0491 570 156", "+81 3-1234-5678", "+55 11 91234-5678", "+91 98765 43210"):
        assert rows[number]["valid"] == "true" and rows[number]["error"] == "", rows[number]

    # Failures, each with a precise reason.
    assert rows["07700 900123"]["error"] == "+447700900123: not a valid number in GB (no assigned number range matches)"
    assert rows["07700 900123"]["valid"] == "false" and rows["07700 900123"]["e164"] == "+447700900123"
    assert rows["+44 20 7946"]["error"].startswith("+44207946: too short in GB")
    assert rows["12ab"]["error"] == "not a phone number: '12ab'"
    assert rows["+999 1234567"]["error"] == "unknown country calling code in '+999 1234567'"
    assert rows["555-0100"]["error"].startswith("'555-0100' has no country")
    assert rows["020 7946 0958"]["error"] == "bad field(s): country"  # UK is not ISO 3166 (GB is)
    assert rows["+1 202 555 0143"]["error"] == "bad field(s): account_id"
    assert rows["+1 555 123 4567"]["error"].startswith("+15551234567: not a valid number in US")

    assert (final.success_count, final.failure_count, final.status) == (12, 8, JobStatus.PARTIAL)


def test_normalize_json_records(make_engine):
    final, out = run(make_engine(), "normalize", EXAMPLES / "numbers.json")
    rows = by_number(out)
    assert final.file_name == "numbers.json"
    assert rows["2025550143"]["e164"] == "+12025550143"
    assert rows["+44 20 7946 0958"]["account_id"] == "4a7f3c9e1b2d4f6a8c0e2b4d6f8a0c1e"
    assert rows["12ab"]["error"] == "not a phone number: '12ab'"
    assert (final.success_count, final.failure_count, final.status) == (5, 1, JobStatus.PARTIAL)


def test_a_file_of_invalid_numbers_fails(make_engine):
    final, out = run(make_engine(), "normalize", EXAMPLES / "numbers_invalid.csv")
    assert final.status is JobStatus.FAILURE and final.failure_count == final.total_count == 6
    assert all(row[-1] for row in out[1:])


def test_empty_mandatory_cells_reject_the_file(make_engine):
    engine = make_engine()
    with pytest.raises(JobRejected) as err:
        engine.add_job("numbers", "normalize", input=EXAMPLES / "numbers_missing.csv")
    assert err.value.errors == {"missing_mandatory_values": {"lines": [3, 5], "count": 2}}
    assert engine.list_jobs() == []


def test_default_country_option(make_engine, tmp_path):
    src = write_csv(tmp_path / "national.csv", [["number"], ["020 7946 0958"], ["+33 6 12 34 56 78"]])
    final, out = run(make_engine({"numbers": {"default_country": "gb"}}), "normalize", src)
    assert [r[3] for r in out[1:]] == ["+442079460958", "+33612345678"]
    assert final.status is JobStatus.SUCCESS


def test_a_bad_default_country_fails_rows_with_the_reason(make_engine, tmp_path):
    src = write_csv(tmp_path / "national.csv", [["number"], ["020 7946 0958"]])
    final, out = run(make_engine({"numbers": {"default_country": "England"}}), "normalize", src)
    assert out[1][-1] == "plugin_options.numbers.default_country must be an ISO 3166 alpha-2 code, got 'England'"
    assert final.status is JobStatus.FAILURE


def test_verifiers(make_engine):
    engine = make_engine()
    verifiers = engine.catalog.verifiers("numbers")
    country, account = verifiers["country"], verifiers["account_id"]
    for good in ("GB", "us", "Fr", "AQ"):
        assert country(good), good
    for bad in ("UK", "USA", "G", "1A", "XK", "ZZ"):
        assert not country(bad), bad
    assert account("4a7f3c9e1b2d4f6a8c0e2b4d6f8a0c1e")
    assert account("4A7F3C9E1B2D4F6A8C0E2B4D6F8A0C1E")
    for bad in ("4a7f3c9e1b2d4f6a8c0e2b4d6f8a0c1", "4a7f3c9e1b2d4f6a8c0e2b4d6f8a0c1eX", "g" * 32, "not-an-account"):
        assert not account(bad), bad


# --- dedupe ------------------------------------------------------------------------------------

DEDUPE_EXPECTED = [
    ["number", "e164", "error"],
    ["+44 20 7946 0958", "+442079460958", ""],
    ["020 7946 0958", "+442079460958", "duplicate of row 1 (+44 20 7946 0958)"],
    ["+1 415 555 2671", "+14155552671", ""],
    ["(415) 555-2671", "+14155552671", "duplicate of row 3 (+1 415 555 2671)"],
    ["+33 6 12 34 56 78", "+33612345678", ""],
    ["+44 (0)20 7946 0958", "+442079460958", "duplicate of row 1 (+44 20 7946 0958)"],
    ["not a number", "", "not a phone number: 'not a number'"],
    ["+49 1512 3456789", "+4915123456789", ""],
    ["+1-415-555-2671", "+14155552671", "duplicate of row 3 (+1 415 555 2671)"],
    ["06 12 34 56 78", "+33612345678", "duplicate of row 5 (+33 6 12 34 56 78)"],
    ["+61 491 570 156", "+61491570156", ""],
]


def test_dedupe_example(make_engine):
    final, out = run(make_engine(), "dedupe", EXAMPLES / "numbers_dedupe.csv")
    assert out == DEDUPE_EXPECTED
    assert (final.success_count, final.failure_count, final.status) == (5, 6, JobStatus.PARTIAL)


class ShutdownAfter(Clock):
    """The real clock, except that the pause after row ``rows`` shuts the engine down (as a
    graceful stop does), so the job is left for another engine to resume at row ``rows + 1``."""

    def __init__(self, control: JobControl, rows: int) -> None:
        self.control = control
        self.rows = rows
        self.pauses = 0

    def wait(self, event: threading.Event, seconds: float) -> bool:
        self.pauses += 1
        if self.pauses == self.rows:
            self.control.request_shutdown()
        return event.wait(seconds)


def run_resumed(make_engine, action: str, source: Path, cut: int) -> tuple:
    """Run a job for ``cut`` rows in one engine, then let a second engine resume it."""
    control = JobControl(1)
    first = make_engine(clock=ShutdownAfter(control, cut), send_progress_after_processed=1)
    job = first.add_job("numbers", action, input=source, wait_ms=1)
    left = first.run_job(job.id, control=control)
    assert (left.status, left.owner, left.rows_done) == (JobStatus.EXECUTING, None, cut)
    first.close()

    second = make_engine()
    done = threading.Event()
    second.events.subscribe(
        lambda ev: (
            done.set()
            if getattr(ev, "job", None) is not None and ev.job.id == job.id and ev.job.status.is_finished
            else None
        )
    )
    second.start(watch=False, triggers=False)  # its scheduler resumes the orphan
    assert done.wait(20), "the job was not resumed"
    final = second.get_job(job.id)
    assert final.node == second.node_name
    return final, output_csv(second, final)


@pytest.mark.parametrize("cut", [1, 4, 6])
def test_dedupe_is_exact_across_a_resume(make_engine, cut):
    final, out = run_resumed(make_engine, "dedupe", EXAMPLES / "numbers_dedupe.csv", cut)
    assert out == DEDUPE_EXPECTED  # every row once, duplicates still point at their first row
    assert (final.success_count, final.failure_count, final.status) == (5, 6, JobStatus.PARTIAL)


# --- summarize ---------------------------------------------------------------------------------


def test_summarize_example(make_engine):
    final, out = run(make_engine(), "summarize", EXAMPLES / "numbers_summarize.csv")
    assert out[0] == ["region", "type", "valid", "invalid", "error"]
    rows = {(r[0], r[1]): (int(r[2]), int(r[3])) for r in out[1:]}
    assert list(rows) == sorted(rows)  # one row per region and type, in order
    assert rows[("GB", "fixed_line")] == (1, 0)
    assert rows[("GB", "toll_free")] == (1, 0)
    assert rows[("FR", "mobile")] == (1, 0)
    assert rows[("001", "toll_free")] == (1, 0)
    assert rows[("ZZ", "unknown")] == (0, 1)  # unparseable, no country
    assert rows[("US", "unknown")] == (0, 2)  # +1 555 123 4567, and n/a in US
    assert sum(v + i for v, i in rows.values()) == final.total_count == 15
    # Nothing is written per row, every row is a success; the report is not counted.
    assert (final.success_count, final.failure_count, final.status) == (15, 0, JobStatus.SUCCESS)
    assert final.output_rows == len(rows)


def test_summarize_is_exact_across_a_resume(make_engine):
    _, expected = run(make_engine(), "summarize", EXAMPLES / "numbers_summarize.csv")
    final, out = run_resumed(make_engine, "summarize", EXAMPLES / "numbers_summarize.csv", 7)
    assert out == expected and final.status is JobStatus.SUCCESS


def test_summarize_with_every_row_rejected_writes_no_report(make_engine, tmp_path):
    src = write_csv(tmp_path / "uk.csv", [["number", "country"], ["020 7946 0958", "UK"], ["07700 900123", "UK"]])
    final, out = run(make_engine(), "summarize", src)
    assert out == [
        ["region", "type", "valid", "invalid", "error"],
        ["", "", "", "", "bad field(s): country"],
        ["", "", "", "", "bad field(s): country"],
    ]
    assert final.status is JobStatus.FAILURE
