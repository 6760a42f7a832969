"""Issue 7.1: bad input, fuzzed, through ``Engine.add_job`` (contract 3.1-3.3).

For any bytes, as CSV or JSON, from a file or a stream: ``add_job`` raises nothing but
``JobRejected``; a rejection names the line (null only where no line applies); a rejected input
leaves no record and no file behind; and an accepted input round-trips: the cells the plugin
receives are the cells of the file. Generated files carry their own model (cells, the physical
line each record starts on), so the expected lines and cells are not computed by the code under
test.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kzconsole.engine import Engine, JobRejected, JobStatus
from tests.conftest import make_settings

PLUGIN = """
from kzconsole.plugin import task

ROWS = []

@task("fz", "echo", description="Records every row it receives", expected_content="text/csv")
def echo(ctx, it, row):
    ROWS.append(dict(row))
    return []

@task("fz", "need", description="Records rows; column m is mandatory", mandatory=["m"])
def need(ctx, it, row):
    ROWS.append(dict(row))
    return []
"""

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Messages of a `csv` error that apply to no line (contract 3.3: line is null only then).
NO_LINE_CSV = ("no header", "no data rows")
NO_LINE_JSON = (
    "no header",
    "expected a JSON array",
    '"file_name" must be',
    '"records" must be',
    "invalid JSON: nested too deeply",
    "invalid JSON: ",
)


class Harness:
    """One engine for a whole property (hypothesis runs many examples per test function)."""

    def __init__(self, root: Path) -> None:
        plugins = root / "plugins"
        plugins.mkdir(parents=True, exist_ok=True)
        (plugins / "fz.py").write_text(PLUGIN)
        self.root = root
        self.engine = Engine(make_settings(root, plugins))
        self.rows: list = self.engine.catalog.task("fz", "echo").function.__globals__["ROWS"]
        self.jobs_dir = self.engine.data_dir / "jobs"
        self.n = 0

    def close(self) -> None:
        self.engine.close()

    def _job_files(self) -> set[str]:
        if not self.jobs_dir.exists():
            return set()
        return {str(p.relative_to(self.jobs_dir)) for p in self.jobs_dir.rglob("*")}

    def add(self, data: bytes, *, fmt: str = "csv", action: str = "echo", as_file: bool = False):
        """add_job; returns the record or the JobRejected, after checking the invariants every
        outcome must keep."""
        self.n += 1
        count = self.engine.count_jobs()
        files = self._job_files()
        if as_file:
            src: object = self.root / f"input-{self.n}.{fmt}"
            src.write_bytes(data)  # type: ignore[union-attr]
        else:
            src = io.BytesIO(data)
        try:
            job = self.engine.add_job("fz", action, input=src, fmt=fmt)
        except JobRejected as exc:
            assert self.engine.count_jobs() == count, "a rejected job was stored"
            assert self._job_files() == files, "a rejected job left files under data_dir/jobs"
            return exc
        # Anything else escaping add_job fails the property (that is the point).
        assert self.engine.get_job(job.id) == job
        return job

    def run(self, job) -> list[dict]:
        del self.rows[:]
        final = self.engine.run_job(job.id)
        assert final.status is JobStatus.SUCCESS, (final.status, final.error)
        assert final.success_count == job.total_count
        return list(self.rows)


@pytest.fixture
def harness(tmp_path):
    h = Harness(tmp_path)
    yield h
    h.close()


# ------------------------------------------------------------------------ a model of a CSV file


def count_breaks(data: str | bytes) -> int:
    """Physical line breaks: \\r\\n, \\n and \\r each end a line (contract 3.1)."""
    if isinstance(data, bytes):
        return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
    return data.count("\n") + data.count("\r") - data.count("\r\n")


def line_at(text: str, pos: int) -> int:
    return count_breaks(text[:pos]) + 1


CELL_CHARS = st.sampled_from(list('ab ,"\n\r\x00\té€😀\ufeff;') + ["\r\n"])
cell_text = st.lists(CELL_CHARS, max_size=6).map("".join)
# Header names: non-empty once stripped; a leading U+FEFF would be taken for a byte-order mark.
name_text = (
    st.lists(st.sampled_from(list('xy ,"\n\té') + ["\r\n"]), min_size=1, max_size=5)
    .map("".join)
    .filter(lambda s: s.strip() != "")
)
TERMINATORS = st.sampled_from(["\n", "\r\n", "\r"])


def render_cell(cell: str, quote: bool, only_cell: bool) -> str:
    needs = any(c in cell for c in ',"\r\n') or (only_cell and cell == "")
    if quote or needs:
        return '"' + cell.replace('"', '""') + '"'
    return cell


class CsvDoc:
    """A generated CSV file and what it holds."""

    def __init__(
        self, draw, ncols: int | None = None, header: list[str] | None = None, rows: list[list[str]] | None = None
    ) -> None:
        self.draw = draw
        if header is None:
            ncols = ncols or draw(st.integers(1, 4))
            header = draw(st.lists(name_text, min_size=ncols, max_size=ncols, unique_by=str.strip))
        self.header_raw = header
        self.header = [h.strip() for h in header]
        ncols = len(header)
        if rows is None:
            rows = draw(st.lists(st.lists(cell_text, min_size=ncols, max_size=ncols), min_size=1, max_size=6))
        self.rows = rows
        self.bom = draw(st.booleans())
        self.parts: list[str] = ["\ufeff"] if self.bom else []
        self.record_lines: list[int] = []
        self.header_line = 0

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def blank_lines(self) -> None:
        for _ in range(self.draw(st.integers(0, 2))):
            self.parts.append(self.draw(TERMINATORS))

    def record(self, cells: list[str], *, last: bool = False) -> int:
        """Append one record; return the line it starts on."""
        start = line_at(self.text, len(self.text))
        quotes = self.draw(st.lists(st.booleans(), min_size=len(cells), max_size=len(cells)))
        body = ",".join(render_cell(c, q, len(cells) == 1) for c, q in zip(cells, quotes, strict=True))
        self.parts.append(body)
        if not last or self.draw(st.booleans()):
            self.parts.append(self.draw(TERMINATORS))
        return start

    def build(self, *, tail: bool = True) -> CsvDoc:
        self.blank_lines()
        self.header_line = self.record(self.header_raw)
        for i, row in enumerate(self.rows):
            self.blank_lines()
            self.record_lines.append(self.record(row, last=tail and i == len(self.rows) - 1))
        if tail:
            self.blank_lines()
        return self

    def data(self) -> bytes:
        return self.text.encode("utf-8")

    def expected_rows(self) -> list[dict]:
        return [{h: (c or None) for h, c in zip(self.header, row, strict=False)} for row in self.rows]


@st.composite
def csv_docs(draw, **kw) -> CsvDoc:
    return CsvDoc(draw, **kw).build()


def assert_line_named(rejection: JobRejected, fmt: str = "csv") -> dict:
    err = rejection.errors.get("csv")
    if err is None:
        return rejection.errors
    assert isinstance(err["message"], str) and err["message"]
    if err["line"] is None:
        allowed = NO_LINE_CSV if fmt == "csv" else NO_LINE_JSON
        assert err["message"].startswith(allowed), f"no line named for {err['message']!r}"
    else:
        assert isinstance(err["line"], int) and err["line"] >= 1
    return rejection.errors


# --------------------------------------------------------------------------------- properties


@FUZZ
@given(doc=csv_docs(), as_file=st.booleans())
def test_valid_csv_round_trips(harness, doc, as_file):
    job = harness.add(doc.data(), as_file=as_file)
    assert not isinstance(job, JobRejected), (job.errors, doc.text)
    assert job.total_count == len(doc.rows)
    assert job.file_name == (f"input-{harness.n}.csv" if as_file else None)
    assert harness.run(job) == doc.expected_rows()
    # The stored input is the file as given, byte for byte.
    with harness.engine.open_input(job) as stored:
        assert stored.read() == doc.data()


@FUZZ
@given(data=st.data())
def test_missing_mandatory_values_name_the_record_lines(harness, data):
    ncols = data.draw(st.integers(1, 4))
    m_at = data.draw(st.integers(0, ncols - 1))
    names = data.draw(
        st.lists(
            name_text.filter(lambda s: s.strip() != "m"), min_size=ncols - 1, max_size=ncols - 1, unique_by=str.strip
        )
    )
    header = names[:m_at] + [" m "] + names[m_at:]
    rows = data.draw(st.lists(st.lists(cell_text, min_size=ncols, max_size=ncols), min_size=1, max_size=6))
    doc = CsvDoc(data.draw, header=header, rows=rows).build()
    result = harness.add(doc.data(), action="need")
    empty = [line for line, row in zip(doc.record_lines, rows, strict=True) if row[m_at] == ""]
    if empty:
        assert isinstance(result, JobRejected)
        assert result.errors == {"missing_mandatory_values": {"lines": empty, "count": len(empty)}}
    else:
        assert not isinstance(result, JobRejected), result.errors
        assert harness.run(result) == doc.expected_rows()


@FUZZ
@given(data=st.data())
def test_ragged_row_names_its_line(harness, data):
    doc = data.draw(csv_docs())
    bad = data.draw(st.integers(0, len(doc.rows) - 1))
    row = list(doc.rows[bad])
    if len(row) >= 2 and data.draw(st.booleans()):
        row.pop()
    else:
        row.append(data.draw(cell_text))
    rows = doc.rows[:bad] + [row] + doc.rows[bad + 1 :]
    doc = CsvDoc(data.draw, header=doc.header_raw, rows=rows).build()
    result = harness.add(doc.data())
    assert isinstance(result, JobRejected)
    assert result.errors == {
        "csv": {"line": doc.record_lines[bad], "message": f"row has {len(row)} cells, the header has {len(doc.header)}"}
    }


@FUZZ
@given(data=st.data())
def test_unclosed_quote_names_the_line_it_opened_on(harness, data):
    doc = data.draw(csv_docs())
    cells = data.draw(st.lists(cell_text, min_size=len(doc.header) - 1, max_size=len(doc.header) - 1))
    opened = data.draw(st.lists(st.sampled_from(list("ab,\n\r ")), max_size=8).map("".join))
    text = doc.text
    if text and not text.endswith(("\n", "\r")):
        text += "\n"
    prefix = text + "".join(render_cell(c, True, False) + "," for c in cells)
    text = prefix + '"' + opened
    result = harness.add(text.encode())
    assert isinstance(result, JobRejected)
    assert result.errors == {"csv": {"line": line_at(text, len(prefix)), "message": "unclosed quote"}}


@FUZZ
@given(data=st.data())
def test_text_after_closing_quote_names_its_line(harness, data):
    doc = data.draw(csv_docs())
    bad = data.draw(st.integers(0, len(doc.rows) - 1))
    col = data.draw(st.integers(0, len(doc.header) - 1))
    built = CsvDoc(data.draw, header=doc.header_raw, rows=doc.rows)
    built.blank_lines()
    built.record(built.header_raw)
    for i, row in enumerate(doc.rows):
        if i != bad:
            built.record(row)
            continue
        cells = [render_cell(c, False, len(row) == 1) for c in row]
        cells[col] = render_cell(row[col], True, False) + "x"
        before = built.text + ",".join(cells[:col]) + ("," if col else "")
        where = line_at(before + cells[col], len(before) + len(cells[col]) - 1)
        built.parts.append(",".join(cells) + "\n")
    result = harness.add(built.data())
    assert isinstance(result, JobRejected)
    assert result.errors == {"csv": {"line": where, "message": "text after a closing quote"}}


INVALID_UTF8 = st.sampled_from([b"\x80", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf"])


@FUZZ
@given(doc=csv_docs(), bad=INVALID_UTF8, where=st.floats(0, 1), as_file=st.booleans())
def test_invalid_utf8_names_the_line(harness, doc, bad, where, as_file):
    data = doc.data()
    pos = int(where * len(data))
    data = data[:pos] + bad + data[pos:]
    try:
        data.decode("utf-8")
        assume(False)  # the insertion happened to complete a character
    except UnicodeDecodeError as exc:
        first = exc.start
    result = harness.add(data, as_file=as_file)
    assert isinstance(result, JobRejected)
    assert result.errors == {"csv": {"line": count_breaks(data[:first]) + 1, "message": "invalid UTF-8"}}


TEXT_TOKENS = [
    b"a",
    b"b",
    b",",
    b",",
    b'"',
    b'""',
    b"\n",
    b"\r",
    b"\r\n",
    b"\xef\xbb\xbf",
    b"\x00",
    b" ",
    b"\xc3\xa9",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b'"k"',
    b"1.50",
    b"null",
    b"true",
    b"\t",
]
TOKENS = st.sampled_from(TEXT_TOKENS + [b"\xff", b"\xc3"])
# Mostly valid UTF-8 made of the characters that matter to CSV and JSON (so that a fair share is
# accepted and round-trips), some arbitrary bytes.
ARBITRARY = st.one_of(
    st.lists(st.sampled_from(TEXT_TOKENS), max_size=60).map(b"".join),
    st.lists(TOKENS, max_size=60).map(b"".join),
    st.binary(max_size=200),
)


def reference_rows(data: bytes) -> list[dict]:
    """What contract 3.1 says an accepted CSV holds, read with the csv module directly."""
    text = data.decode("utf-8-sig")
    records = [r for r in csv.reader(io.StringIO(text, newline=""), strict=True) if r]
    header = [h.strip() for h in records[0]]
    return [{h: (c or None) for h, c in zip(header, r, strict=False)} for r in records[1:]]


@FUZZ
@given(data=ARBITRARY, as_file=st.booleans())
def test_arbitrary_bytes_as_csv(harness, data, as_file):
    result = harness.add(data, as_file=as_file)
    if isinstance(result, JobRejected):
        errors = assert_line_named(result)
        assert set(errors) == {"csv"}
        return
    assert harness.run(result) == reference_rows(data)


@FUZZ
@given(data=ARBITRARY, as_file=st.booleans())
def test_arbitrary_bytes_as_json(harness, data, as_file):
    result = harness.add(data, fmt="json", as_file=as_file)
    if isinstance(result, JobRejected):
        errors = assert_line_named(result, "json")
        assert set(errors) <= {"csv", "expected_content"}
        return
    rows = harness.run(result)
    assert len(rows) == result.total_count


# ----------------------------------------------------------------------------------------- JSON

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=6,
)
KEYS = st.sampled_from(["a", "b", "c d", "é", "x,y", 'q"', "n\nl"])


def expected_cell(value) -> str | None:
    if value is None or value == "":
        return None
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return json.dumps(value)  # numbers as written in the source
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@FUZZ
@given(
    records=st.lists(st.dictionaries(KEYS, json_values, min_size=1, max_size=4), min_size=1, max_size=5),
    envelope=st.booleans(),
    ascii_only=st.booleans(),
    indent=st.sampled_from([None, 1]),
    pad_keys=st.booleans(),
)
def test_valid_json_round_trips(harness, records, envelope, ascii_only, indent, pad_keys):
    def key(k: str) -> str:
        return f" {k} " if pad_keys else k

    doc_records = [{key(k): v for k, v in r.items()} for r in records]
    doc = {"data": {"records": doc_records, "file_name": "from-envelope.csv"}} if envelope else doc_records
    data = json.dumps(doc, ensure_ascii=ascii_only, indent=indent).encode()
    job = harness.add(data, fmt="json")
    assert not isinstance(job, JobRejected), job.errors
    assert job.file_name == ("from-envelope.csv" if envelope else None)
    columns: list[str] = []
    for r in records:
        columns += [k for k in r if k not in columns]
    expected = [{c: expected_cell(r.get(c)) for c in columns} for r in records]
    assert harness.run(job) == expected


@FUZZ
@given(
    doc=st.one_of(
        json_values,
        st.lists(json_values, max_size=4),
        st.fixed_dictionaries(
            {
                "data": st.one_of(
                    json_values,
                    st.fixed_dictionaries(
                        {"records": st.one_of(json_values, st.lists(json_values, max_size=3)), "file_name": json_values}
                    ),
                )
            }
        ),
    )
)
def test_any_json_document(harness, doc):
    result = harness.add(json.dumps(doc).encode(), fmt="json")
    if isinstance(result, JobRejected):
        assert_line_named(result, "json")
        return
    assert len(harness.run(result)) == result.total_count


# ------------------------------------------------------------------------- the big and the empty


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "no header"),
        (b"\xef\xbb\xbf", "no header"),
        (b"\n\r\n\r\n\n", "no header"),
        (b"a,b\n", "no data rows"),
        (b"a,b\r\r\n\n", "no data rows"),
    ],
)
def test_empty_inputs_have_no_line(harness, data, message):
    result = harness.add(data)
    assert isinstance(result, JobRejected)
    assert result.errors == {"csv": {"line": None, "message": message}}


def test_cr_only_file(harness):
    job = harness.add(b'a,b\r1,2\r\r3,"x\ry"\r')
    assert harness.run(job) == [{"a": "1", "b": "2"}, {"a": "3", "b": "x\ry"}]


def test_nul_bytes_are_data(harness):
    job = harness.add(b'a\x00,b\n\x00,"\x00"\n')
    assert harness.run(job) == [{"a\x00": "\x00", "b": "\x00"}]


def test_hundred_thousand_columns(harness):
    n = 100_000
    header = ",".join(f"c{i}" for i in range(n)).encode()
    row = ",".join(str(i) for i in range(n)).encode()
    job = harness.add(header + b"\n" + row + b"\n")
    assert job.total_count == 1
    (received,) = harness.run(job)
    assert len(received) == n and received["c0"] == "0" and received[f"c{n - 1}"] == str(n - 1)
    ragged = harness.add(header + b"\n" + row + b",extra\n")
    assert ragged.errors == {"csv": {"line": 2, "message": f"row has {n + 1} cells, the header has {n}"}}


def test_ten_megabyte_cell(harness):
    big = "é" * (5 * 1024 * 1024)  # 10 MB of UTF-8
    job = harness.add(f'a,b\n1,"{big}"\n2,x\n'.encode())
    rows = harness.run(job)
    assert rows[0]["b"] == big and rows[1] == {"a": "2", "b": "x"}
    unclosed = harness.add(f'a,b\n1,2\n3,"{big}\n\n'.encode())
    assert unclosed.errors == {"csv": {"line": 3, "message": "unclosed quote"}}


def test_invalid_utf8_deep_in_a_large_file(harness):
    # Past the first read chunks: the line is still the physical line of the bad byte.
    lines = [b"a,b"] + [b"%d,x" % i for i in range(50_000)]
    lines[40_000] = b"40000,\xff"
    result = harness.add(b"\r\n".join(lines) + b"\r\n")
    assert result.errors == {"csv": {"line": 40_001, "message": "invalid UTF-8"}}
