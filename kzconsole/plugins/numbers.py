"""Phone numbers: normalize, dedupe and summarize CSV files of numbers (the domain of the original
Kazoo ``number_management`` tasks), with the offline ``phonenumbers`` library (the Python port of
Google's libphonenumber).

The three tasks are the three shapes a CSV task usually takes:

- ``normalize``: one output row per input row, a failure carrying a precise reason;
- ``dedupe``: a decision that depends on earlier rows, kept in the iterator state ``it`` (so it is
  exact across a resume: the state is plain JSON and it is the only memory the task has);
- ``summarize``: writes nothing per row, aggregates in ``it`` and writes its report in ``finish``.

A number written without a leading ``+`` is read in the row's ``country`` (ISO 3166 alpha-2), else
in ``[plugin_options.numbers] default_country``; with neither it is a failed row.

Try it::

    kzconsole tasks add numbers normalize --input examples/numbers_normalize.csv --wait-ms 0 --run
"""

from __future__ import annotations

import re
from typing import Any

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType, ValidationResult

from kzconsole.plugin import INIT, Next, runtime, task, verifier

# ISO 3166-1 alpha-2, every officially assigned code. (phonenumbers also knows AC, TA and XK, which
# are not ISO codes: such numbers are read when written in +E.164 form.)
ISO_3166_ALPHA2 = frozenset(
    [
        "AD",
        "AE",
        "AF",
        "AG",
        "AI",
        "AL",
        "AM",
        "AO",
        "AQ",
        "AR",
        "AS",
        "AT",
        "AU",
        "AW",
        "AX",
        "AZ",
        "BA",
        "BB",
        "BD",
        "BE",
        "BF",
        "BG",
        "BH",
        "BI",
        "BJ",
        "BL",
        "BM",
        "BN",
        "BO",
        "BQ",
        "BR",
        "BS",
        "BT",
        "BV",
        "BW",
        "BY",
        "BZ",
        "CA",
        "CC",
        "CD",
        "CF",
        "CG",
        "CH",
        "CI",
        "CK",
        "CL",
        "CM",
        "CN",
        "CO",
        "CR",
        "CU",
        "CV",
        "CW",
        "CX",
        "CY",
        "CZ",
        "DE",
        "DJ",
        "DK",
        "DM",
        "DO",
        "DZ",
        "EC",
        "EE",
        "EG",
        "EH",
        "ER",
        "ES",
        "ET",
        "FI",
        "FJ",
        "FK",
        "FM",
        "FO",
        "FR",
        "GA",
        "GB",
        "GD",
        "GE",
        "GF",
        "GG",
        "GH",
        "GI",
        "GL",
        "GM",
        "GN",
        "GP",
        "GQ",
        "GR",
        "GS",
        "GT",
        "GU",
        "GW",
        "GY",
        "HK",
        "HM",
        "HN",
        "HR",
        "HT",
        "HU",
        "ID",
        "IE",
        "IL",
        "IM",
        "IN",
        "IO",
        "IQ",
        "IR",
        "IS",
        "IT",
        "JE",
        "JM",
        "JO",
        "JP",
        "KE",
        "KG",
        "KH",
        "KI",
        "KM",
        "KN",
        "KP",
        "KR",
        "KW",
        "KY",
        "KZ",
        "LA",
        "LB",
        "LC",
        "LI",
        "LK",
        "LR",
        "LS",
        "LT",
        "LU",
        "LV",
        "LY",
        "MA",
        "MC",
        "MD",
        "ME",
        "MF",
        "MG",
        "MH",
        "MK",
        "ML",
        "MM",
        "MN",
        "MO",
        "MP",
        "MQ",
        "MR",
        "MS",
        "MT",
        "MU",
        "MV",
        "MW",
        "MX",
        "MY",
        "MZ",
        "NA",
        "NC",
        "NE",
        "NF",
        "NG",
        "NI",
        "NL",
        "NO",
        "NP",
        "NR",
        "NU",
        "NZ",
        "OM",
        "PA",
        "PE",
        "PF",
        "PG",
        "PH",
        "PK",
        "PL",
        "PM",
        "PN",
        "PR",
        "PS",
        "PT",
        "PW",
        "PY",
        "QA",
        "RE",
        "RO",
        "RS",
        "RU",
        "RW",
        "SA",
        "SB",
        "SC",
        "SD",
        "SE",
        "SG",
        "SH",
        "SI",
        "SJ",
        "SK",
        "SL",
        "SM",
        "SN",
        "SO",
        "SR",
        "SS",
        "ST",
        "SV",
        "SX",
        "SY",
        "SZ",
        "TC",
        "TD",
        "TF",
        "TG",
        "TH",
        "TJ",
        "TK",
        "TL",
        "TM",
        "TN",
        "TO",
        "TR",
        "TT",
        "TV",
        "TW",
        "TZ",
        "UA",
        "UG",
        "UM",
        "US",
        "UY",
        "UZ",
        "VA",
        "VC",
        "VE",
        "VG",
        "VI",
        "VN",
        "VU",
        "WF",
        "WS",
        "YE",
        "YT",
        "ZA",
        "ZM",
        "ZW",
    ]
)

_ACCOUNT_ID = re.compile(r"[0-9a-fA-F]{32}")

# PhoneNumberType values as written in the `type` column: stable, machine-friendly names.
TYPE_NAMES = {
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
    PhoneNumberType.UNKNOWN: "unknown",
}

UNKNOWN_REGION = "ZZ"  # libphonenumber's name for "no region"; also used by summarize


# --- verifiers: run by the engine on every non-empty cell of these columns, in every task of
# the category, before the task function sees the row. A falsy result fails the row with
# `bad field(s): country`. ---------------------------------------------------------------------


@verifier("numbers", "country")
def country(value: str) -> bool:
    """An ISO 3166 alpha-2 code, in any letter case (``gb`` is ``GB``)."""
    return value.strip().upper() in ISO_3166_ALPHA2


@verifier("numbers", "account_id")
def account_id(value: str) -> bool:
    """A Kazoo account id: 32 hexadecimal characters."""
    return _ACCOUNT_ID.fullmatch(value.strip()) is not None


# --- parsing, shared by the tasks -------------------------------------------------------------


class NumberError(ValueError):
    """A number that cannot be read, with the reason written in the row's ``error``."""


def default_country() -> str | None:
    """``[plugin_options.numbers] default_country``, checked (None when unset)."""
    value = runtime().options("numbers").get("default_country")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value.strip().upper() not in ISO_3166_ALPHA2:
        raise NumberError(f"plugin_options.numbers.default_country must be an ISO 3166 alpha-2 code, got {value!r}")
    return value.strip().upper()


_PARSE_REASONS = {
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}


def parse(number: str, region: str | None) -> phonenumbers.PhoneNumber:
    """Parse ``number`` (read in ``region`` unless it starts with ``+``); raise NumberError."""
    text = number.strip()
    try:
        return phonenumbers.parse(text, region)
    except NumberParseException as exc:
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE:
            if text.startswith(("+", "00")):
                raise NumberError(f"unknown country calling code in {text!r}") from None
            if region is None:
                raise NumberError(
                    f"{text!r} has no country: write it as +<country code><number>, or fill the country column"
                ) from None
            raise NumberError(f"phonenumbers has no numbering plan for country {region}") from None
        reason = _PARSE_REASONS.get(exc.error_type, "cannot be parsed")
        raise NumberError(f"{reason}: {text!r}") from None


def region_of(num: phonenumbers.PhoneNumber) -> str:
    """The number's region (``001`` for non-geographic numbers such as +800), or its country
    code's main region when the number is invalid, or ``ZZ``."""
    region = phonenumbers.region_code_for_number(num)
    if region:
        return region
    return phonenumbers.region_code_for_country_code(num.country_code)


def invalid_reason(num: phonenumbers.PhoneNumber) -> str | None:
    """Why a parsed number is not valid, or None when it is."""
    if phonenumbers.is_valid_number(num):
        return None
    e164 = phonenumbers.format_number(num, PhoneNumberFormat.E164)
    region = region_of(num)
    where = f"in {region}" if region != UNKNOWN_REGION else f"for +{num.country_code}"
    why = phonenumbers.is_possible_number_with_reason(num)
    if why == ValidationResult.INVALID_COUNTRY_CODE:
        return f"{e164}: unknown country calling code +{num.country_code}"
    if why == ValidationResult.TOO_SHORT:
        return f"{e164}: too short {where}"
    if why == ValidationResult.TOO_LONG:
        return f"{e164}: too long {where}"
    if why == ValidationResult.INVALID_LENGTH:
        return f"{e164}: no number {where} has this length"
    if why == ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
        return f"{e164}: too short {where} (only dialable locally: area code missing?)"
    return f"{e164}: not a valid number {where} (no assigned number range matches)"


def _row_region(row: dict[str, Any]) -> str | None:
    # `country` passed its verifier, so it is an ISO code (any case) or None.
    value = row.get("country")
    return value.strip().upper() if value else default_country()


# --- normalize: one row out per row in -------------------------------------------------------

NORMALIZE_HEADER = [
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


@task(
    "numbers",
    "normalize",
    description="Writes each number in E.164, national and international form, with its region, type and validity",
    doc=(
        "Reads `number` (in +E.164 form, or national in `country`, an ISO 3166 alpha-2 code, or in "
        "[plugin_options.numbers] default_country) and writes `e164`, `national`, `international`, "
        "`region` (001 for non-geographic numbers such as +800), `type` (fixed_line, mobile, "
        "toll_free, ...) and `valid`. A number that cannot be parsed, or that parses but is not a "
        "valid number, is a failed row whose `error` says why. `account_id` (32 hex characters) is "
        "copied through."
    ),
    mandatory=["number"],
    optional=["country", "account_id"],
    output_header=NORMALIZE_HEADER,
)
def normalize(ctx, it, row):
    out = {"number": row["number"], "country": row.get("country"), "account_id": row.get("account_id")}
    try:
        num = parse(row["number"], _row_region(row))
    except NumberError as exc:
        # A dict with a non-empty "error" is a failed row; the other keys still fill their columns.
        return {**out, "valid": "false", "error": str(exc)}
    reason = invalid_reason(num)
    out.update(
        e164=phonenumbers.format_number(num, PhoneNumberFormat.E164),
        national=phonenumbers.format_number(num, PhoneNumberFormat.NATIONAL),
        international=phonenumbers.format_number(num, PhoneNumberFormat.INTERNATIONAL),
        region=region_of(num),
        type=TYPE_NAMES.get(phonenumbers.number_type(num), "unknown"),
        valid="false" if reason else "true",
        error=reason,
    )
    return out


# --- dedupe: the iterator state is the task's only memory -------------------------------------


@task(
    "numbers",
    "dedupe",
    description="Keeps the first row of each E.164 number and fails the later ones",
    doc=(
        "Reads `number` (national numbers in the row's `country` column when the file has one, "
        "else in [plugin_options.numbers] default_country) and writes it with its E.164 form. A "
        "later row with the same E.164 number fails with `duplicate of row N (...)`, N being the "
        "data row (1-based, header excluded) of the first occurrence; a number that cannot be "
        "parsed fails with the reason. Rows are counted in the iterator state, so a resumed job "
        "numbers them exactly. A row rejected before the task sees it (a bad `country` or "
        "`account_id` cell) is not counted, so in such a file N is the row among those checked."
    ),
    mandatory=["number"],
    output_header=["number", "e164", "error"],
)
def dedupe(ctx, it, row):
    # The state is plain JSON (the contract's condition for resuming after a crash):
    # {"rows": rows seen so far, "first": {e164: [row of first occurrence, number as written]}}.
    state = {"rows": 0, "first": {}} if it is INIT else it
    state["rows"] += 1
    line = state["rows"]
    try:
        e164 = phonenumbers.format_number(parse(row["number"], _row_region(row)), PhoneNumberFormat.E164)
    except NumberError as exc:
        # Next(state, result): hand the new state on *and* report this row's failure.
        return Next(state, {"number": row["number"], "error": str(exc)})
    first = state["first"].get(e164)
    if first is not None:
        first_line, written = first
        return Next(
            state, {"number": row["number"], "e164": e164, "error": f"duplicate of row {first_line} ({written})"}
        )
    state["first"][e164] = [line, row["number"]]
    return Next(state, [row["number"], e164])


# --- summarize: aggregate in the state, write in finish ----------------------------------------


def _summary_rows(ctx, it):
    """finish: one row per region and type, sorted, from the counts gathered in ``it``."""
    if it is INIT:  # no row reached the task
        return None
    # A list of rows: written, not counted (counts are about input rows).
    return [[region, kind, *it[region][kind]] for region in sorted(it) for kind in sorted(it[region])]


@task(
    "numbers",
    "summarize",
    description="Counts valid and invalid numbers per region and number type",
    doc=(
        "Writes nothing per row; when the file is done, writes one row per region and number type "
        "with the counts of valid and invalid numbers. A number that cannot be parsed counts as "
        "invalid, under its `country` (or ZZ) and type `unknown`. National numbers are read in "
        "`country`, else in [plugin_options.numbers] default_country."
    ),
    mandatory=["number"],
    optional=["country"],
    output_header=["region", "type", "valid", "invalid"],
    finish=_summary_rows,
)
def summarize(ctx, it, row):
    counts = {} if it is INIT else it  # {region: {type: [valid, invalid]}}: plain JSON
    region = _row_region(row)
    try:
        num = parse(row["number"], region)
    except NumberError:
        key, kind, ok = region or UNKNOWN_REGION, "unknown", False
    else:
        key = region_of(num)
        kind = TYPE_NAMES.get(phonenumbers.number_type(num), "unknown")
        ok = phonenumbers.is_valid_number(num)
    pair = counts.setdefault(key, {}).setdefault(kind, [0, 0])
    pair[0 if ok else 1] += 1
    return Next(counts)  # success, nothing written
