"""Contract 3.1-3.3 (input) and 4.4 (output) for kzconsole.engine.csvio.

Also the original's `kz_csv_tests` vectors (kazoo-original.md 12.3) that still apply under the
contract; where the contract changed the expected result (null vs "", blank line ends the file,
every cell quoted, backslash-escaped quotes) the test says so and checks the contract's answer.
"""

from __future__ import annotations

import collections
import csv
import datetime
import decimal
import gc
import io
import json
import os
import re
import stat
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kzconsole.engine import csvio
from kzconsole.engine.csvio import InputCheck, InputFormatError, check_input, sniff_format
from kzconsole.engine.csvout import CsvRowWriter, csv_text
from kzconsole.engine.jsonrecords import ENVELOPE_HELP
from kzconsole.engine.records import iter_records

# ------------------------------------------------------------------------------------------
# helpers


def check(tmp_path: Path, data: bytes | str, **kw) -> InputCheck:
    """check_input over a file holding `data`; the stored copy goes to tmp_path/stored.csv."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    src = tmp_path / ("src.json" if kw.get("fmt") == "json" else "src.csv")
    src.write_bytes(data)
    dest = tmp_path / "stored.csv"
    if dest.exists():
        dest.unlink()
    return check_input(src, dest, **kw)


def csv_error(tmp_path: Path, data: bytes | str, **kw) -> dict:
    result = check(tmp_path, data, **kw)
    assert not result.ok
    assert not (tmp_path / "stored.csv").exists()
    assert result.header is None and result.total_rows == 0
    assert set(result.errors) == {"csv"}
    return result.errors["csv"]


def read_back(tmp_path: Path, data: bytes | str, **kw) -> tuple[list[str], list[dict]]:
    """Check `data` (it must be accepted), then read the stored copy back with iter_records."""
    result = check(tmp_path, data, **kw)
    assert result.ok, result.errors
    header, rows = iter_records(tmp_path / "stored.csv")
    rows = list(rows)
    assert header == result.header
    assert len(rows) == result.total_rows
    return header, rows


def cells_of(tmp_path: Path, body: str, ncols: int) -> list[list[str | None]]:
    """Data rows of `body` as lists of cells, under a generated header of `ncols` columns."""
    header = ",".join(f"c{i}" for i in range(1, ncols + 1))
    names, rows = read_back(tmp_path, header + "\n" + body)
    return [[row[name] for name in names] for row in rows]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in ("src.csv", "src.json"))


# ------------------------------------------------------------------------------------------
# 3.1 CSV: encoding


def test_bom_is_dropped_and_the_stored_copy_is_byte_for_byte(tmp_path):
    data = b"\xef\xbb\xbfname,e164\r\nAl,+1\r\n"
    header, rows = read_back(tmp_path, data)
    assert header == ["name", "e164"]
    assert rows == [{"name": "Al", "e164": "+1"}]
    assert (tmp_path / "stored.csv").read_bytes() == data


def test_invalid_utf8_names_its_line(tmp_path):
    assert csv_error(tmp_path, b"a,b\n1,2\n3,\xff\n4,5\n") == {"line": 3, "message": "invalid UTF-8"}


def test_invalid_utf8_inside_a_multiline_cell_names_the_physical_line(tmp_path):
    data = b'a,b\r\n1,"x\r\ny\r\nz\xc3"\r\n'
    assert csv_error(tmp_path, data) == {"line": 4, "message": "invalid UTF-8"}


def test_truncated_utf8_sequence_at_end_of_file(tmp_path):
    assert csv_error(tmp_path, "a\nb\n\u00e9".encode()[:-1])["line"] == 3


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64])
def test_line_numbers_survive_chunk_boundaries(tmp_path, monkeypatch, chunk):
    # \r\n pairs and multi-byte characters split between reads must count once, in the fast path
    # (the csv module's own line count) and on the error path (the byte re-scan).
    monkeypatch.setattr(csvio, "_CHUNK", chunk)
    monkeypatch.setattr(csvio, "_TEXT_CHUNK", chunk)
    body = "".join(f"\u00e9{i},x\r\n" for i in range(40))
    assert csv_error(tmp_path, "a,b\r\n" + body + "bad\r\n")["line"] == 42
    data = ("a,b\r\n" + body).encode() + b"\xff,1\r\n"
    assert csv_error(tmp_path, data) == {"line": 42, "message": "invalid UTF-8"}
    data = ("a,b\r" + body.replace("\r\n", "\r")).encode() + b"\xff,1\r\n"
    assert csv_error(tmp_path, data)["line"] == 42


# ------------------------------------------------------------------------------------------
# 3.1 CSV: RFC 4180


def test_quoted_cells_hold_commas_quotes_and_line_breaks(tmp_path):
    data = 'a,b\n"x, y","say ""hi"""\n"1\r\n2","3\n4\r5"\n'
    assert cells_of(tmp_path, data.split("\n", 1)[1], 2) == [["x, y", 'say "hi"'], ["1\r\n2", "3\n4\r5"]]


@pytest.mark.parametrize("eol", ["\r\n", "\n", "\r"])
def test_every_line_end_ends_a_record(tmp_path, eol):
    _header, rows = read_back(tmp_path, eol.join(["a,b", "1,2", "3,4"]) + eol)
    assert rows == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]


def test_mixed_line_ends(tmp_path):
    assert cells_of(tmp_path, "1\r2\n3\r\n4", 1) == [["1"], ["2"], ["3"], ["4"]]


def test_blank_lines_are_skipped_everywhere_and_do_not_end_the_file(tmp_path):
    data = "\n\r\n\ra,b\n\n1,2\r\n\r\n\r3,4\n\n\n"
    header, rows = read_back(tmp_path, data)
    assert header == ["a", "b"]
    assert rows == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]


def test_blank_lines_inside_a_quoted_cell_are_content(tmp_path):
    assert cells_of(tmp_path, '"x\n\ny",1\n', 2) == [["x\n\ny", "1"]]


def test_quote_inside_an_unquoted_cell_is_ordinary(tmp_path):
    assert cells_of(tmp_path, 'a"b,5" tall,x""y\n', 3) == [['a"b', '5" tall', 'x""y']]


def test_text_after_a_closing_quote_names_its_line(tmp_path):
    assert csv_error(tmp_path, 'a,b\n1,"x"y\n') == {"line": 2, "message": "text after a closing quote"}
    # The closing quote of a multi-line cell: the line where the stray text is.
    assert csv_error(tmp_path, 'a,b\n1,"x\ny\nz" w\n')["line"] == 4


def test_unclosed_quote_names_the_line_where_the_cell_opened(tmp_path):
    assert csv_error(tmp_path, 'a,b\n1,2\n3,"open\n4,5\n6,7\n') == {"line": 3, "message": "unclosed quote"}


def test_unclosed_quote_after_a_closed_multiline_cell_in_the_same_record(tmp_path):
    # The record starts on line 2; its first cell spans lines 2-3 and is closed; the third cell
    # opens on line 3 and is never closed.
    data = 'a,b,c\n"one\ntwo",x,"it ""was""\nopen\nfor ever\n'
    assert csv_error(tmp_path, data)["line"] == 3
    # Cells close and open again on lines 3 and 4; the last one opens on line 4.
    data = 'a,b,c\n"one\ntwo","x\ny","open\n""z""\n'
    assert csv_error(tmp_path, data)["line"] == 4
    # A record that ended on line 3; the next one opens a cell on line 4.
    data = 'a,b,c\n"one\ntwo",x,y\n,"three""\n""four\n'
    assert csv_error(tmp_path, data)["line"] == 4
    data = 'a,b,c\n"one\n""two""",x,y\n1,"open'
    assert csv_error(tmp_path, data)["line"] == 4


def test_unclosed_quote_in_the_header(tmp_path):
    assert csv_error(tmp_path, '\n\na,"b\n1,2\n')["line"] == 3


def test_unclosed_quote_far_into_a_large_file(tmp_path, monkeypatch):
    monkeypatch.setattr(csvio, "_CHUNK", 4096)
    body = "".join(f"{i},x\n" for i in range(20000))
    assert csv_error(tmp_path, "a,b\n" + body + '1,"open\n' + "z\n" * 100)["line"] == 20002


def test_ten_megabyte_cells_are_accepted(tmp_path):
    big = "x" * (10 * 1024 * 1024)
    _header, rows = read_back(tmp_path, f'a,b\n1,"{big}"\n2,{big}\n')
    assert rows[0]["b"] == big and rows[1]["b"] == big


def test_a_cell_over_the_limit_is_an_error_naming_where_it_opened(tmp_path, monkeypatch):
    limit = csv.field_size_limit()
    try:
        csv.field_size_limit(1000)
        monkeypatch.setattr(csvio, "FIELD_SIZE_LIMIT", 1000)
        error = csv_error(tmp_path, 'a,b\n1,2\n3,"' + "y\n" * 2000)
    finally:
        csv.field_size_limit(limit)
    assert error["line"] == 3
    assert "longer than 1000 characters" in error["message"]


# ------------------------------------------------------------------------------------------
# 3.1 CSV: header, shape, line numbers


def test_header_names_are_stripped(tmp_path):
    header, rows = read_back(tmp_path, ' a ,\tb\t," c "\n1,2,3\n')
    assert header == ["a", "b", "c"]
    assert rows == [{"a": "1", "b": "2", "c": "3"}]


@pytest.mark.parametrize(
    "data, line", [("a,,b\n1,2,3\n", 1), ("a, \n1,2\n", 1), ("\n\r\na,b,\n1,2,3\n", 3), ('""\n1\n', 1)]
)
def test_an_empty_header_name_is_an_error(tmp_path, data, line):
    error = csv_error(tmp_path, data)
    assert error["line"] == line
    assert error["message"].startswith("empty column name")


def test_a_duplicate_header_name_is_an_error(tmp_path):
    error = csv_error(tmp_path, "\na, b ,b\n1,2,3\n")
    assert error == {"line": 2, "message": "duplicate column name in the header: 'b'"}


@pytest.mark.parametrize("data", [b"", b"\n", b"\r\n\r\n", b"\r\r\n\n", b"\xef\xbb\xbf"])
def test_no_header(tmp_path, data):
    assert csv_error(tmp_path, data) == {"line": None, "message": "no header"}


@pytest.mark.parametrize("data", ["a,b", "a,b\n", "a,b\n\n\r\n"])
def test_no_data_rows(tmp_path, data):
    assert csv_error(tmp_path, data) == {"line": None, "message": "no data rows"}


def test_a_record_with_a_different_cell_count_names_its_line(tmp_path):
    assert csv_error(tmp_path, "a,b\n1,2\n\n3\n4,5\n") == {"line": 4, "message": "row has 1 cells, the header has 2"}
    # A record's line is where it starts, even when a quoted cell spans several lines.
    assert csv_error(tmp_path, 'a,b\n1,2\n"x\ny\nz",2,3\n')["line"] == 3


def test_empty_cells_quoted_or_not_are_none(tmp_path):
    assert cells_of(tmp_path, ',"",x\n"",,\n', 3) == [[None, None, "x"], [None, None, None]]


def test_a_single_column_file_with_empty_cells(tmp_path):
    # `""` is a row with one empty cell; a blank line is no row at all.
    assert cells_of(tmp_path, '""\n\nx\n""\n', 1) == [[None], ["x"], [None]]


# ------------------------------------------------------------------------------------------
# 3.3 mandatory columns and values


def test_missing_mandatory_fields_in_declared_order(tmp_path):
    result = check(tmp_path, "b,x\n1,2\n", mandatory=["z", "b", "a"])
    assert result.errors == {"missing_mandatory_fields": ["z", "a"]}
    assert result.header == ["b", "x"] and result.total_rows == 1
    assert not (tmp_path / "stored.csv").exists()


def test_missing_mandatory_values_list_physical_start_lines(tmp_path):
    data = 'id,e164,note\n1,+1,\n\n,+2,x\n3,"",y\n"4\n",+4,\n5,+5,z\n'
    result = check(tmp_path, data, mandatory=["e164", "id"])
    assert result.errors == {"missing_mandatory_values": {"lines": [4, 5], "count": 2}}
    assert result.total_rows == 5
    assert not (tmp_path / "stored.csv").exists()
    data = 'id,e164\n"multi\nline",\n'
    result = check(tmp_path, data, mandatory=["e164"])
    assert result.errors["missing_mandatory_values"] == {"lines": [2], "count": 1}


def test_missing_mandatory_values_lists_at_most_100_lines(tmp_path):
    data = "a,b\n" + "".join(f"{i},\n" if i % 2 else f"{i},x\n" for i in range(1000))
    result = check(tmp_path, data, mandatory=["b"])
    values = result.errors["missing_mandatory_values"]
    assert values["count"] == 500
    assert values["lines"] == [3 + 2 * i for i in range(100)]


def test_both_column_problems_are_reported_at_once(tmp_path):
    result = check(tmp_path, "a,b\n,1\n2,3\n", mandatory=["a", "c"])
    assert result.errors == {"missing_mandatory_fields": ["c"], "missing_mandatory_values": {"lines": [2], "count": 1}}


def test_column_checks_are_skipped_when_the_file_is_invalid(tmp_path):
    result = check(tmp_path, "a,b\n,1\n2\n", mandatory=["a", "c"])
    assert result.errors == {"csv": {"line": 3, "message": "row has 1 cells, the header has 2"}}


# ------------------------------------------------------------------------------------------
# check_input: what is stored, and where


def test_stored_file_is_private_and_no_temporary_file_is_left(tmp_path):
    result = check(tmp_path, "a\n1\n")
    assert result.ok and result.header == ["a"] and result.total_rows == 1
    assert result.file_name is None
    assert stat.S_IMODE(os.stat(tmp_path / "stored.csv").st_mode) == 0o600
    assert leftovers(tmp_path) == ["stored.csv"]


@pytest.mark.parametrize("data", ["a\n", 'a\n"1\n', "a,b\n1\n", "a\n1\n"])
def test_rejected_input_leaves_nothing(tmp_path, data):
    result = check(tmp_path, data, mandatory=["b"] if data == "a\n1\n" else ())
    assert not result.ok
    assert leftovers(tmp_path) == []


def test_a_stream_source_is_read_to_the_end_and_left_open(tmp_path):
    data = b"a,b\n" + b"1,2\n" * 50000
    stream = io.BytesIO(data)
    result = check_input(stream, tmp_path / "in.csv")
    assert result.ok and result.total_rows == 50000
    assert not stream.closed
    assert (tmp_path / "in.csv").read_bytes() == data


def test_a_stream_without_readinto(tmp_path):
    class Pipe:
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self._data.read(min(n, 7))

    result = check_input(Pipe(b"a,b\n1,2\n3,\xff\n"), tmp_path / "in.csv")
    assert result.errors == {"csv": {"line": 3, "message": "invalid UTF-8"}}
    result = check_input(Pipe(b"a,b\n1,2\n3,4\n"), tmp_path / "in.csv")
    assert result.ok and (tmp_path / "in.csv").read_bytes() == b"a,b\n1,2\n3,4\n"


def test_an_existing_destination_is_replaced_only_on_success(tmp_path):
    dest = tmp_path / "in.csv"
    dest.write_text("old")
    assert not check_input(io.BytesIO(b"a\n"), dest).ok
    assert dest.read_text() == "old"
    assert check_input(io.BytesIO(b"a\n1\n"), dest).ok
    assert dest.read_text() == "a\n1\n"


def test_unknown_format_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="xml"):
        check_input(io.BytesIO(b""), tmp_path / "x", fmt="xml")


def test_input_format_error():
    err = InputFormatError(3, "unclosed quote")
    assert err.as_error() == {"line": 3, "message": "unclosed quote"}
    assert str(err) == "line 3: unclosed quote"
    assert str(InputFormatError(None, "no header")) == "no header"


@pytest.mark.parametrize(
    "name, fmt, expected",
    [
        ("x.json", None, "json"),
        ("X.JSON", None, "json"),
        ("x.csv", "json", "json"),
        ("x.csv", None, "csv"),
        (None, None, "csv"),
        (None, "json", "json"),
        ("json", None, "csv"),
    ],
)
def test_sniff_format(name, fmt, expected):
    assert sniff_format(name, fmt) == expected


# ------------------------------------------------------------------------------------------
# 3.2 JSON


def test_json_array_columns_in_first_seen_order(tmp_path):
    data = '[{"b": "1"}, {"a": "2", "b": "3"}, {"c": "4"}]'
    header, rows = read_back(tmp_path, data, fmt="json")
    assert header == ["b", "a", "c"]
    assert rows == [{"b": "1", "a": None, "c": None}, {"b": "3", "a": "2", "c": None}, {"b": None, "a": None, "c": "4"}]


def test_json_values(tmp_path):
    data = (
        '[{"s": "text, \\"quoted\\"\\r\\n", "e": "", "n": null, "f": 1.50,'
        ' "x": -0, "big": 123456789012345678901234567890, "t": true, "F": false,'
        ' "arr": [1.50, "\u00e9", {"k": null}], "obj": {"a": {"b": [true, false]}}}]'
    )
    _header, rows = read_back(tmp_path, data, fmt="json")
    assert rows == [
        {
            "s": 'text, "quoted"\r\n',
            "e": None,
            "n": None,
            "f": "1.50",
            "x": "-0",
            "big": "123456789012345678901234567890",
            "t": "true",
            "F": "false",
            "arr": '[1.50,"\u00e9",{"k":null}]',
            "obj": '{"a":{"b":[true,false]}}',
        }
    ]


def test_json_numbers_keep_their_text(tmp_path):
    _header, rows = read_back(tmp_path, '[{"a": 1.50, "b": 1E+5, "c": 0.1e-3, "d": 7}]', fmt="json")
    assert rows == [{"a": "1.50", "b": "1E+5", "c": "0.1e-3", "d": "7"}]


def test_json_envelope_and_file_name(tmp_path):
    data = '{"data": {"records": [{"a": "1"}], "file_name": "numbers.csv"}, "extra": 1}'
    result = check(tmp_path, data, fmt="json")
    assert result.ok and result.file_name == "numbers.csv" and result.header == ["a"]
    assert (tmp_path / "stored.csv").read_text() == "a\n1\n"


@pytest.mark.parametrize(
    "data, file_name",
    [
        ("[]", None),
        ('{"data": {"records": []}}', None),
        ('{"data": {"records": null, "file_name": "f.json"}}', "f.json"),
        ('{"data": {"file_name": "f.json"}}', "f.json"),
    ],
)
def test_json_without_records_is_no_input(tmp_path, data, file_name):
    result = check(tmp_path, data, fmt="json", mandatory=["a"])
    assert result == InputCheck(errors={}, header=None, total_rows=0, file_name=file_name)
    assert result.ok
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "data, line, message",
    [
        ('[{"a": 1}, 2]', 2, "record 2 is not an object"),
        ('[{"a": 1}, {"b": 2}, [3]]', 3, "record 3 is not an object"),
        ('{"data": {"records": [null]}}', 1, "record 1 is not an object"),
        ('{"a": 1}', None, ENVELOPE_HELP),
        ('"text"', None, ENVELOPE_HELP),
        ("42", None, ENVELOPE_HELP),
        ('{"data": []}', None, ENVELOPE_HELP),
        ('{"data": {"records": {"a": 1}}}', None, '"records" must be an array of objects'),
        ('{"data": {"records": [], "file_name": 3}}', None, '"file_name" must be a string'),
        ('[{"a": 1}, {" ": 2}]', 2, "record 2 has an empty key"),
        ('[{"a": 1, " a": 2}]', 1, "record 1 has two keys for column 'a'"),
        ("[{}, {}]", None, "no header: the records have no keys"),
    ],
)
def test_json_that_is_not_records(tmp_path, data, line, message):
    assert csv_error(tmp_path, data, fmt="json") == {"line": line, "message": message}


def test_invalid_json(tmp_path):
    error = csv_error(tmp_path, '[\n{"a": 1},\n{"a": }\n]', fmt="json")
    assert error["line"] == 3 and error["message"].startswith("invalid JSON")
    assert csv_error(tmp_path, '[{"a": NaN}]', fmt="json")["message"].startswith("invalid JSON")
    assert csv_error(tmp_path, b'[\n{"a": "\xff"}]', fmt="json") == {"line": 2, "message": "invalid UTF-8"}


def test_json_with_a_bom(tmp_path):
    _header, rows = read_back(tmp_path, b'\xef\xbb\xbf[{"a": "1"}]', fmt="json")
    assert rows == [{"a": "1"}]


def test_json_mandatory_checks_use_record_numbers(tmp_path):
    data = '[{"a": "1", "b": "x"}, {"a": "", "b": "y"}, {"b": "z"}, {"a": null}, {"a": "5"}]'
    result = check(tmp_path, data, fmt="json", mandatory=["a", "c"])
    assert result.errors == {
        "missing_mandatory_fields": ["c"],
        "missing_mandatory_values": {"lines": [2, 3, 4], "count": 3},
    }
    assert result.header == ["a", "b"] and result.total_rows == 5
    assert leftovers(tmp_path) == []


def test_json_stream_source(tmp_path):
    result = check_input(io.BytesIO(b'[{"a": "x,y"}]'), tmp_path / "in.csv", fmt="json")
    assert result.ok
    assert (tmp_path / "in.csv").read_bytes() == b'a\n"x,y"\n'
    assert stat.S_IMODE(os.stat(tmp_path / "in.csv").st_mode) == 0o600


def test_json_single_column_of_empty_values_reads_back(tmp_path):
    # The original wrote a blank line here, which ended the file (kazoo-original.md 2.4).
    _header, rows = read_back(tmp_path, '[{"a": "1"}, {"a": ""}, {"a": null}, {"a": "4"}]', fmt="json")
    assert [row["a"] for row in rows] == ["1", None, None, "4"]


# ------------------------------------------------------------------------------------------
# iter_records


def test_iter_records_skips_rows_and_blank_lines(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("\n a ,b\n1,\n\n2,x\n\n3,y\n4,z\n", newline="")
    header, rows = iter_records(path, skip=2)
    assert header == ["a", "b"]
    assert list(rows) == [{"a": "3", "b": "y"}, {"a": "4", "b": "z"}]
    assert list(iter_records(path, skip=10)[1]) == []
    assert [r["a"] for r in iter_records(path, skip=0)[1]] == ["1", "2", "3", "4"]
    assert [r["a"] for r in iter_records(path, skip=-1)[1]] == ["1", "2", "3", "4"]


def test_iter_records_without_a_header(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("\n\n")
    with pytest.raises(InputFormatError, match="no header"):
        iter_records(path)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_iter_records_closes_its_file(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("a\n1\n2\n")
    before = _open_fds()
    _header, rows = iter_records(path)
    assert _open_fds() == before + 1
    assert list(rows) == [{"a": "1"}, {"a": "2"}]  # exhausted
    assert _open_fds() == before
    _header, rows = iter_records(path)
    next(rows)
    del rows  # abandoned half-way
    gc.collect()
    assert _open_fds() == before
    _header, rows = iter_records(path)
    del rows  # never iterated
    gc.collect()
    assert _open_fds() == before


# ------------------------------------------------------------------------------------------
# 4.4 output


def test_output_rules():
    assert csv_text([["a", "b"], ["x,y", 'q"'], ["cr\r", "lf\n", "crlf\r\n"], [None, "", None]]) == (
        'a,b\n"x,y","q"""\n"cr\r","lf\n","crlf\r\n"\n,,\n'
    )


@pytest.mark.parametrize("row", [[None], [""], ("",)])
def test_a_row_whose_only_cell_is_empty_is_written_quoted(row):
    assert csv_text([row]) == '""\n'


def test_cells_are_rendered_by_type():
    class Money(decimal.Decimal):
        pass

    class Name(str):
        def __str__(self) -> str:
            return "not this"

    class Ratio(float):  # like numpy.float64: str() is the number, repr() is not
        def __repr__(self) -> str:
            return "Ratio(...)"

        def __str__(self) -> str:
            return float.__repr__(self)

    class Thing:
        def __str__(self) -> str:
            return "str of thing"

        def __repr__(self) -> str:
            return "<Thing>"

    row = [
        1,
        -2.5,
        True,
        False,
        None,
        decimal.Decimal("1.50"),
        Money("2"),
        Name("as is"),
        Ratio(0.5),
        datetime.date(2024, 1, 2),
        Thing(),
        ["x", 1],
        {"k": "v"},
        b"raw",
    ]
    assert csv_text([row]) == (
        "1,-2.5,True,False,,1.50,2,as is,0.5,\"datetime.date(2024, 1, 2)\",<Thing>,\"['x', 1]\",{'k': 'v'},b'raw'\n"
    )


def test_an_empty_row_is_an_error():
    with pytest.raises(ValueError):
        CsvRowWriter(io.StringIO().write).writerow([])


def test_one_write_per_row():
    writes: list[str] = []
    writer = CsvRowWriter(writes.append)
    writer.writerow(["a", "multi\nline"])
    writer.writerow([object()])
    assert len(writes) == 2 and writes[0] == 'a,"multi\nline"\n'


_HEADER_NAME = (
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufeff"), min_size=1, max_size=8)
    .map(str.strip)
    .filter(bool)
)
_CELL = st.one_of(
    st.none(), st.text(alphabet=st.sampled_from(list(',"\r\n \tab\u00e9\u2603\x00')), max_size=8), st.text(max_size=12)
)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_round_trip_through_the_writer_checker_and_reader(tmp_path_factory, data):
    header = data.draw(st.lists(_HEADER_NAME, min_size=1, max_size=4, unique=True))
    rows = data.draw(st.lists(st.lists(_CELL, min_size=len(header), max_size=len(header)), min_size=1, max_size=8))
    folder = tmp_path_factory.mktemp("rt")
    text = csv_text([header, *rows])
    result = check_input(io.BytesIO(text.encode()), folder / "in.csv")
    assert result.ok, result.errors
    assert result.header == header and result.total_rows == len(rows)
    got_header, got = iter_records(folder / "in.csv")
    assert got_header == header
    assert [[r[name] for name in header] for r in got] == [[c or None for c in row] for row in rows]
    # The plain csv module reads the same cells back too (the output is ordinary RFC 4180).
    assert list(csv.reader(io.StringIO(text, newline=""))) == [header, *[[c or "" for c in row] for row in rows]]


# ------------------------------------------------------------------------------------------
# kazoo-original.md 12.3 (kz_csv_tests) under the contract


def test_original_take_row_line_breaks(tmp_path):
    # `\n\r` and `\r\r` were single breaks in the original; here they are a break and a blank
    # line, which is skipped, so the records are the same.
    header, rows = read_back(tmp_path, "a\r\nb\nc\nd\n\re\r\r")
    assert header == ["a"] and [r["a"] for r in rows] == ["b", "c", "d", "e"]
    header, rows = read_back(tmp_path, "F1\na\r\nb\nc\nd\n\re\r\r")
    assert [r["F1"] for r in rows] == ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize("data", ["", "\r\r"])
def test_original_take_row_eof(tmp_path, data):
    assert csv_error(tmp_path, data) == {"line": None, "message": "no header"}


@pytest.mark.parametrize(
    "body, expected",
    [
        (",", [None, None]),
        ("1,B", ["1", "B"]),
        ("a,\n", ["a", None]),
        (",a\n", [None, "a"]),
        ("a,\n\n", ["a", None]),  # the remainder "\n" is a blank line: skipped
        (',""\n', [None, None]),  # the original kept "" apart from null; the contract does not
        (',"bla"\n', [None, "bla"]),
        (",,,", [None, None, None, None]),
        ("'a',", ["'a'", None]),
        (",A,,B,\"1, 3\",,'',\n", [None, "A", None, "B", "1, 3", None, "''", None]),
        (
            '1,"{""type"": ""Point"", ""coordinates"": [102.0, 0.5]}"\n',
            ["1", '{"type": "Point", "coordinates": [102.0, 0.5]}'],
        ),
        ('1,"ha ""ha"" ha"\n', ["1", 'ha "ha" ha']),
        ("1,\"ha 'ha' ha\"\n", ["1", "ha 'ha' ha"]),
        # parse_row
        (
            '"0.1651","ZAMBIA, MOBILE","ZAMBIA, MOBILE-26094","ZAMBIA, MOBILE","26094","0"',
            ["0.1651", "ZAMBIA, MOBILE", "ZAMBIA, MOBILE-26094", "ZAMBIA, MOBILE", "26094", "0"],
        ),
        (
            '"0.1651","ZAMBIA, MOBILE","ZAMBIA, MOBILE-26094","ZAMBIA, MOBILE","26094",0',
            ["0.1651", "ZAMBIA, MOBILE", "ZAMBIA, MOBILE-26094", "ZAMBIA, MOBILE", "26094", "0"],
        ),
        (
            '0.1651,"ZAMBIA, MOBILE","ZAMBIA, MOBILE-26094","ZAMBIA, MOBILE","26094","0"',
            ["0.1651", "ZAMBIA, MOBILE", "ZAMBIA, MOBILE-26094", "ZAMBIA, MOBILE", "26094", "0"],
        ),
        ("test,", ["test", None]),
        ('"test,","foo"', ["test,", "foo"]),
        ('"""test""","foo"', ['"test"', "foo"]),
        ('"This is a ""test""","foo"', ['This is a "test"', "foo"]),
        ("test,,", ["test", None, None]),
        ("test,,foo bar", ["test", None, "foo bar"]),
        (",test,'',foo bar", [None, "test", "''", "foo bar"]),
        (',test,"",foo bar', [None, "test", None, "foo bar"]),
        (
            'a,"b","""c""","{""data"": { ""id"": ""xxxxxxxxx"", ""int"": 20 ""bool"": false }, ""children"": {}}"\n',
            ["a", "b", '"c"', '{"data": { "id": "xxxxxxxxx", "int": 20 "bool": false }, "children": {}}'],
        ),
    ],
)
def test_original_row_vectors(tmp_path, body, expected):
    assert cells_of(tmp_path, body, len(expected)) == [expected]


def test_original_take_mapped_row(tmp_path):
    assert read_back(tmp_path, "f2,f1\n1,B")[1] == [{"f1": "B", "f2": "1"}]
    assert read_back(tmp_path, "f1,f2\na,\n")[1] == [{"f1": "a", "f2": None}]


def test_original_spaces_around_quotes_are_now_an_error(tmp_path):
    # The original dropped spaces before an opening and after a closing quote. In RFC 4180 the
    # first quote here sits inside an unquoted cell (ordinary), and the second cell's closing
    # quote is followed by spaces: text after a closing quote.
    body = '          "test ,"         ,"  foo  ","bar  "'
    assert csv_error(tmp_path, "a,b,c\n" + body) == {"line": 2, "message": "text after a closing quote"}


@pytest.mark.parametrize(
    "data, error",
    [
        ("a,b,\n,1,2,", {"line": 1, "message": "empty column name in the header (column 3)"}),
        ("abc", {"line": None, "message": "no data rows"}),
        ("", {"line": None, "message": "no header"}),
        ("a,b,c\n1\n2\n3", {"line": 2, "message": "row has 1 cells, the header has 3"}),
    ],
)
def test_original_count_rows_zero_is_an_error(tmp_path, data, error):
    assert csv_error(tmp_path, data) == error


@pytest.mark.parametrize(
    "data, count",
    [("a,b,c\n1,2,3", 1), ("a,b,c\n1,2,3\r\n4,5,6\n7,8,9\n", 3), ("a,b,c\n1,2,3\r\n4,5,6\n\r7,8,9\r\r", 3)],
)
def test_original_count_rows(tmp_path, data, count):
    result = check(tmp_path, data)
    assert result.ok and result.total_rows == count


# csv-spectrum files (github.com/maxogden/csv-spectrum) and kazoo's task_add files. The original
# could not read newlines / quotes_and_newlines (no line breaks in cells); the contract can.
SPECTRUM = {
    "comma_in_quotes": (
        'first,last,address,city,zip\nJohn,Doe,120 any st.,"Anytown, WW",08123\n',
        [["John", "Doe", "120 any st.", "Anytown, WW", "08123"]],
    ),
    "empty": ('a,b,c\n1,"",""\n2,3,4\n', [["1", None, None], ["2", "3", "4"]]),
    "escaped_quotes": ('a,b\n1,"ha ""ha"" ha"\n3,4\n', [["1", 'ha "ha" ha'], ["3", "4"]]),
    "json": (
        'key,val\n1,"{""type"": ""Point"", ""coordinates"": [102.0, 0.5]}"\n',
        [["1", '{"type": "Point", "coordinates": [102.0, 0.5]}']],
    ),
    "newlines": (
        'a,b,c\n1,2,3\n"Once upon \na time",5,6\n7,8,9\n',
        [["1", "2", "3"], ["Once upon \na time", "5", "6"], ["7", "8", "9"]],
    ),
    "quotes_and_newlines": ('a,b\n1,"ha \n""ha"" \nha"\n3,4\n', [["1", 'ha \n"ha" \nha'], ["3", "4"]]),
    "simple": ("a,b,c\n1,2,3\n", [["1", "2", "3"]]),
    "simple_crlf": ("a,b,c\r\n1,2,3\r\n", [["1", "2", "3"]]),
    "utf8": ("a,b,c\n1,2,3\n4,5,\u02a4\n", [["1", "2", "3"], ["4", "5", "\u02a4"]]),
    "task_add0": (
        "account_id,e164,3rd column\naccount0000000000000000000000002,4157215234,\nw1212,4159876543,",
        [["account0000000000000000000000002", "4157215234", None], ["w1212", "4159876543", None]],
    ),
    "task_add1": (
        "account_id,e164\n,+14157215234\naccount0000000000000000000000002,\n",
        [[None, "+14157215234"], ["account0000000000000000000000002", None]],
    ),
    "task_add2": (
        "account_id,e164\naccount0000000000000000000000002,+14157215234\n",
        [["account0000000000000000000000002", "+14157215234"]],
    ),
    "task_add3": (
        "account_id,e164\naccount0000000000000000000000002,4157215234\n",
        [["account0000000000000000000000002", "4157215234"]],
    ),
}


@pytest.mark.parametrize("name", sorted(SPECTRUM))
def test_original_files(tmp_path, name):
    data, expected = SPECTRUM[name]
    header, rows = read_back(tmp_path, data)
    assert [[row[h] for h in header] for row in rows] == expected


def test_original_task_add1_is_the_missing_values_example(tmp_path):
    result = check(tmp_path, SPECTRUM["task_add1"][0], mandatory=["account_id", "e164"])
    assert result.errors == {"missing_mandatory_values": {"lines": [2, 3], "count": 2}}
    # task_add0 has an extra column: accepted.
    assert check(tmp_path, SPECTRUM["task_add0"][0], mandatory=["account_id", "e164"]).ok


def test_original_quoted_quotes_file_is_now_rejected(tmp_path):
    # Backslash-escaped quotes are not RFC 4180: `"qu\"` closes the cell, then `otes` follows.
    data = 'this,header,here\n"has","qu\\"otes\\"","in it"'
    assert csv_error(tmp_path, data) == {"line": 2, "message": "text after a closing quote"}


@pytest.mark.parametrize(
    "row, expected",
    [
        (["a", "b"], "a,b\n"),
        (["a", None, "b"], "a,,b\n"),
        (["a", "", "b"], "a,,b\n"),  # the contract has no null-vs-"" distinction
        ([None, None, "b"], ",,b\n"),
        (["a", "b", None], "a,b,\n"),
        (["a", "b", None, None, "c"], "a,b,,,c\n"),
        (["a", "comma, test"], 'a,"comma, test"\n'),
        (["a", 'double quote "test"'], 'a,"double quote ""test"""\n'),
        (
            ["a", '{"data": { "id": "xxxxxxxxx", "int": 20 "bool": false }, "children": {}}'],
            'a,"{""data"": { ""id"": ""xxxxxxxxx"", ""int"": 20 ""bool"": false }, ""children"": {}}"\n',
        ),
        # mapped_row_to_iolist: a dict mapped onto the header gives these rows
        ([None] * 5, ",,,,\n"),
        (["a", "b", None, None, None], "a,b,,,\n"),
        ([None, None], ",\n"),
    ],
)
def test_original_row_to_iolist(row, expected):
    assert csv_text([row]) == expected


@pytest.mark.parametrize(
    "records, expected",
    [
        ([{"A": "a1"}, {"A": "42"}], "A\na1\n42\n"),
        (
            [{"field1": None, "field deux": "QUUX"}, {"field deux": None}, {"field1": "r'bla.+\\n'"}],
            "field1,field deux\n,QUUX\n,\nr'bla.+\\n',\n",
        ),
        (
            [
                {"account_id": "account0000000000000000000000002", "e164": "+14157215234", "cnam.outbound": "me"},
                {"account_id": "", "e164": "+14157215235", "cnam.outbound": ""},
            ],
            "account_id,e164,cnam.outbound\naccount0000000000000000000000002,+14157215234,me\n,+14157215235,\n",
        ),
        # variable_json_test: every key is a column (the original's file was ragged).
        (
            [{"a": 1}, {"a": 2, "b": 3}, {"b": 3, "a": 4}, {"c": 3, "a": 4}, {"c": "c-value, test", "a": ""}],
            'a,b,c\n1,,\n2,3,\n4,3,\n4,,3\n,,"c-value, test"\n',
        ),
        # comma_list_json_test: arrays are compact JSON text (the original joined them with ",").
        (
            [{"a": ["x", "y"]}, {"a": [], "b": ["x", "y", "z"]}, {"a": [{"x": 1}, {"y": 2}]}],
            'a,b\n"[""x"",""y""]",\n[],"[""x"",""y"",""z""]"\n"[{""x"":1},{""y"":2}]",\n',
        ),
    ],
)
def test_original_json_to_iolist(tmp_path, records, expected):
    import json

    result = check(tmp_path, json.dumps(records), fmt="json")
    assert result.ok
    assert (tmp_path / "stored.csv").read_bytes().decode() == expected


# ------------------------------------------------------------------------------------------
# streaming and speed


def _write_big_csv(path: Path, target_bytes: int) -> int:
    row = '+14155550{i:06d},{i:032x},Customer number {i},"{i} Market St, Suite {i}",{pad}\n'
    pad = "x" * 100
    rows = 0
    with open(path, "w", newline="") as f:
        f.write("e164,account_id,name,address,notes\n")
        size = 0
        while size < target_bytes:
            chunk = "".join(row.format(i=i, pad=pad) for i in range(rows, rows + 10000))
            f.write(chunk)
            size += len(chunk)
            rows += 10000
    return rows


def test_checking_and_reading_stream_in_constant_memory(tmp_path):
    src = tmp_path / "big.csv"
    rows = _write_big_csv(src, 30 * 1024 * 1024)
    assert src.stat().st_size >= 30 * 1024 * 1024
    tracemalloc.start()
    try:
        result = check_input(src, tmp_path / "in.csv", mandatory=["e164", "account_id"])
        assert result.ok and result.total_rows == rows
        count = sum(1 for _ in iter_records(tmp_path / "in.csv")[1])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == rows
    assert peak < 10 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


# ------------------------------------------------------------------------------------------
# JSON input in constant memory (contract 8.4: bodies stream both ways): one record at a time


def _cells_by_json_loads(data: str) -> list[dict[str, str | None]]:
    """What 3.2 says each record's cells are, by the standard library's whole-document parser."""

    def cell(value):
        if isinstance(value, str):
            return value or None
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (dict, list)):
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return str(value)

    doc = json.loads(data, parse_int=str, parse_float=str)
    records = doc if isinstance(doc, list) else doc["data"]["records"]
    return [{k.strip(): cell(v) for k, v in r.items()} for r in records]


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
_scalar = st.one_of(
    _text,
    st.integers(-(10**30), 10**30).map(str),
    st.booleans(),
    st.none(),
    st.sampled_from(["1.50", "-0.0", "1E+5", "2e-7"]),
)


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(
        st.dictionaries(st.sampled_from(["a", "b", "c d", "é", "n"]), _scalar, min_size=1), min_size=1, max_size=40
    ),
    blank=st.sampled_from(["", " ", "\n", " \r\n\t"]),
    envelope=st.booleans(),
    pipe=st.booleans(),
)
def test_json_records_read_one_at_a_time_match_the_whole_document(tmp_path_factory, records, blank, envelope, pipe):
    """Records cut at every place a read can end (numbers, strings, escapes, multi-byte characters)
    give what json.loads of the whole document gives; the envelope's file_name may come after the
    records; a pipe (not seekable) is spooled."""

    def value(v):
        # Bare only what is a JSON number: str.isdigit() is also true of "²", and "007" has a leading zero.
        number = isinstance(v, str) and re.fullmatch(r"-?(0|[1-9][0-9]*)", v) is not None
        return v if v in ("1.50", "-0.0", "1E+5", "2e-7") or number else json.dumps(v, ensure_ascii=False)

    parts = [
        ("{" + f",{blank}".join(f"{json.dumps(k)}{blank}:{blank}{value(v)}" for k, v in r.items()) + "}")
        for r in records
    ]
    array = f"[{blank}" + f"{blank},{blank}".join(parts) + f"{blank}]"
    data = f'{{"data": {{"records": {array},{blank}"file_name": "f.json"}}}}' if envelope else array
    tmp = tmp_path_factory.mktemp("json")
    # Reads of 7 bytes: every boundary falls in the middle of something.
    source = io.BufferedReader(_Trickle(data.encode("utf-8")), buffer_size=7) if pipe else io.BytesIO(data.encode())
    result = check_input(source, tmp / "in.csv", fmt="json")
    assert result.ok, result.errors
    header, rows = iter_records(tmp / "in.csv")
    expected = _cells_by_json_loads(data)
    assert [{name: row.get(name) for name in header} for row in rows] == [
        {name: r.get(name) for name in header} for r in expected
    ]
    assert result.file_name == ("f.json" if envelope else None)


class _Trickle(io.RawIOBase):
    """A pipe-like source: not seekable, a few bytes per read."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), 7, len(self._data))
        b[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


def test_a_large_json_input_is_checked_and_stored_in_constant_memory(tmp_path):
    src = tmp_path / "big.json"
    rows = 0
    with open(src, "w", encoding="utf-8") as f:
        f.write('{"data": {"records": [\n')
        while f.tell() < 30 * 1024 * 1024:
            f.write(
                ("," if rows else "")
                + json.dumps(
                    {"number": f"+1415555{rows % 10000:04d}", "n": rows, "note": "x" * 200, "tags": ["a", {"b": 1.50}]}
                )
                + "\n"
            )
            rows += 1
        f.write('], "file_name": "numbers.json"}}')
    tracemalloc.start()
    try:
        result = check_input(src, tmp_path / "in.csv", fmt="json", mandatory=["number"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.ok and result.total_rows == rows and result.file_name == "numbers.json"
    assert peak < 10 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    header, stored = iter_records(tmp_path / "in.csv")
    assert header == ["number", "n", "note", "tags"]
    (last,) = collections.deque(stored, maxlen=1)
    assert last == {
        "number": f"+1415555{(rows - 1) % 10000:04d}",
        "n": str(rows - 1),
        "note": "x" * 200,
        "tags": '["a",{"b":1.5}]',
    }


def test_a_long_json_record_and_errors_past_the_first_read(tmp_path):
    big = "y" * 300_000  # longer than several reads
    _, rows = read_back(tmp_path, json.dumps([{"a": big}, {"a": "z"}]), fmt="json")
    assert [r["a"] for r in rows] == [big, "z"]
    filler = "".join(f'{{"a": "{i}"}},\n' for i in range(20_000))  # ~250 KB of good records first
    error = csv_error(tmp_path, f'[\n{filler}{{"a": tru}}\n]', fmt="json")
    assert error == {"line": 20_002, "message": "invalid JSON: Expecting value"}
    assert csv_error(tmp_path, f'[\n{filler}{{"a": 1}}] extra', fmt="json") == {
        "line": 20_002,
        "message": "invalid JSON: Extra data",
    }
    assert csv_error(tmp_path, f'[\n{filler}{{"a": 1}} {{"a": 2}}]', fmt="json")["message"] == (
        "invalid JSON: Expecting ',' delimiter"
    )
    assert csv_error(tmp_path, f'[\n{filler}{{"a": "\xff"}}]'.encode("latin-1"), fmt="json") == {
        "line": 20_002,
        "message": "invalid UTF-8",
    }
    assert csv_error(tmp_path, '{"data": {"records": [], "records": []}}', fmt="json")["message"] == (
        'the envelope has "records" twice'
    )
