"""The records of a JSON input (contract 3.2), read one at a time in constant memory.

An upload may be as large as ``api.max_upload_bytes`` (100 MB by default): parsed whole, such a
body is a gigabyte of Python objects. :class:`JsonRecords` walks the top level itself (the array,
or the envelope ``{"data": {"records": [...], "file_name": ...}}``) and hands each record to the
standard library's decoder (``raw_decode``, in C), so only one record is ever held. Numbers keep
the text they were written with (:class:`Number`).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

__all__ = ["ENVELOPE_HELP", "JsonFormatError", "JsonRecords", "Number", "json_cell"]

ENVELOPE_HELP = 'expected a JSON array of objects or {"data": {"records": [...]}}'
_READ = 1 << 16
_SPACE = re.compile(r"[ \t\n\r]*")
# A value the buffer may have cut short: a literal, number or escape needs at most this many
# characters more to be told from an error.
_CUT_SHORT = 6


class Number(str):
    """A JSON number, kept as the text it was written with (`1.50` stays `1.50`)."""

    __slots__ = ()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


_DECODER = json.JSONDecoder(parse_int=Number, parse_float=Number, parse_constant=_reject_constant)


class JsonFormatError(ValueError):
    """Not records: ``line`` is the physical line of a syntax error (None for a shape error);
    ``utf8``: the text is not UTF-8 (the caller finds the line of the first bad byte)."""

    def __init__(self, line: int | None, message: str, *, utf8: bool = False) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.utf8 = utf8


class JsonRecords:
    """Iterating gives each record as parsed (any JSON value: the caller checks it is an object);
    once the iteration ended, :attr:`file_name` is the envelope's ``file_name`` (None without)
    and :attr:`found` whether there were records at all (an array, even empty, or
    ``records`` not null). Raises :class:`JsonFormatError`."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._text = ""
        self._at = 0  # what of _text is read
        self._line = 1  # the line _text starts on
        self._eof = False
        self.file_name: str | None = None
        self.found = False

    def __iter__(self) -> Iterator[Any]:
        first = self._peek()
        if first == "[":
            self.found = True
            yield from self._array()
        elif first == "{":
            yield from self._envelope()
        else:
            self._value()  # a syntax error names its line; a value of the wrong kind is not records
            raise JsonFormatError(None, ENVELOPE_HELP)
        if self._peek():
            raise self._syntax("Extra data", self._at)

    # ---- the top level

    def _envelope(self) -> Iterator[Any]:
        data_seen = False
        for key in self._members():
            if key != "data":
                self._value()
                continue
            if self._peek() != "{" or data_seen:
                raise JsonFormatError(None, ENVELOPE_HELP)
            data_seen = True
            records_seen = False
            for inner in self._members():
                if inner == "records":
                    if records_seen:
                        raise JsonFormatError(None, 'the envelope has "records" twice')
                    records_seen = True
                    if self._peek() == "[":
                        self.found = True
                        yield from self._array()
                    elif self._value() is not None:
                        raise JsonFormatError(None, '"records" must be an array of objects')
                elif inner == "file_name":
                    name = self._value()
                    if name is not None and type(name) is not str:  # Numbers are str subclasses
                        raise JsonFormatError(None, '"file_name" must be a string')
                    self.file_name = name or None
                else:
                    self._value()
        if not data_seen:
            raise JsonFormatError(None, ENVELOPE_HELP)

    def _members(self) -> Iterator[str]:
        """The keys of the object starting here; the caller reads each value."""
        if not self._opened("}"):
            return
        while True:
            if self._peek() != '"':
                raise self._syntax("Expecting property name enclosed in double quotes", self._at)
            key = self._value()
            if self._peek() != ":":
                raise self._syntax("Expecting ':' delimiter", self._at)
            self._at += 1
            self._peek()
            yield key
            if not self._goes_on("}"):
                return

    def _opened(self, close: str) -> bool:
        """Step over the opening bracket here: False (and over ``close`` too) when the object or
        array is empty."""
        self._at += 1
        if self._peek() == close:
            self._at += 1
            return False
        return True

    def _array(self) -> Iterator[Any]:
        if not self._opened("]"):
            return
        while True:
            yield self._value()
            if not self._goes_on("]"):
                return

    def _goes_on(self, closer: str) -> bool:
        """After a member or an item: past a comma (True) or past ``closer`` (False)."""
        following = self._peek()
        self._at += 1
        if following == closer:
            return False
        if following != ",":
            raise self._syntax("Expecting ',' delimiter", self._at - 1)
        return True

    # ---- the text

    def _peek(self) -> str:
        """The next character after blanks ("" at the end), not consumed."""
        while True:
            blanks = _SPACE.match(self._text, self._at)
            assert blanks is not None  # it matches the empty string
            self._at = blanks.end()
            if self._at < len(self._text):
                return self._text[self._at]
            if not self._more():
                return ""

    def _value(self) -> Any:
        """One whole JSON value from here (read on until the buffer holds all of it)."""
        self._peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self._text, self._at)
            except json.JSONDecodeError as exc:
                cut = exc.msg.startswith("Unterminated string") or exc.pos >= len(self._text) - _CUT_SHORT
                if cut and self._more():
                    continue
                raise self._syntax(exc.msg, exc.pos) from None
            except RecursionError:
                raise JsonFormatError(None, "invalid JSON: nested too deeply") from None
            except ValueError as exc:  # NaN, Infinity
                raise JsonFormatError(None, f"invalid JSON: {exc}") from None
            if end >= len(self._text) - _CUT_SHORT and self._more():
                continue  # a number (or literal) at the buffer's end may go on in the next read
            self._at = end
            return value

    def _more(self) -> bool:
        """Read on (at least as much again as is held, so a long value is re-parsed a few times,
        not once per read); False at the end."""
        if self._eof:
            return False
        if self._at:
            self._line += self._text.count("\n", 0, self._at)
            self._text = self._text[self._at :]
            self._at = 0
        chunk = self._source.read(max(_READ, len(self._text)))
        try:
            self._text += self._decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError:
            raise JsonFormatError(None, "invalid UTF-8", utf8=True) from None
        self._eof = not chunk
        return True

    def _syntax(self, message: str, pos: int) -> JsonFormatError:
        return JsonFormatError(self._line + self._text.count("\n", 0, pos), f"invalid JSON: {message}")


def _compact(value: Any) -> str:
    """Compact JSON text of a parsed value whose numbers are `Number`s."""
    kind = type(value)
    if kind is dict:
        return "{" + ",".join(f"{_json_str(k)}:{_compact(v)}" for k, v in value.items()) + "}"
    if kind is list:
        return "[" + ",".join(map(_compact, value)) + "]"
    if kind is Number:
        return str.__str__(value)
    if kind is str:
        return _json_str(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "null"


def _json_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def json_cell(value: Any) -> str | None:
    """A record's value as a cell (3.2): strings as they are ("" is None), numbers as written,
    booleans as true/false, arrays and objects as compact JSON text."""
    kind = type(value)
    if kind is str:
        return value or None
    if kind is Number:
        return str.__str__(value)
    if value is None:
        return None
    if value is True:
        return "true"
    if value is False:
        return "false"
    return _compact(value)
