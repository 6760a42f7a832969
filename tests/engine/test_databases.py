"""Database sources and the Kazoo name classification (contract 2.6, kazoo-original.md 7.4)."""

from __future__ import annotations

import re

import pytest

from kzconsole.engine.databases import (
    SYSTEM_DATABASES,
    DatabaseSource,
    DirectorySource,
    ListSource,
    classify,
    list_databases,
    register_source,
    source_for,
)
from kzconsole.plugin import Database
from tests.conftest import make_settings

ID = "0123456789abcdef0123456789abcdef"
SPLIT = "account/01/23/456789abcdef0123456789abcdef"
ENC = "account%2F01%2F23%2F456789abcdef0123456789abcdef"
ENC_LOWER = "account%2f01%2f23%2f456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    "name",
    [
        ID,  # a raw account id
        ID.upper(),
        SPLIT,  # account/xx/yy/<28>: 42 characters
        ENC,  # URL-encoded, upper-case %2F
        ENC_LOWER,  # URL-encoded, lower-case %2f
        "account/ab/cd/0123456789abcdef0123456789ab",
    ],
)
def test_account_forms(name):
    assert classify(name) == "account"


def test_account_split_form_is_42_characters():
    assert len(SPLIT) == 42
    assert classify(SPLIT) == "account"


@pytest.mark.parametrize("base", [ID, SPLIT, ENC, ENC_LOWER])
@pytest.mark.parametrize("month", ["01", "06", "09", "10", "12"])
def test_account_mod_forms(base, month):
    assert classify(f"{base}-2026{month}") == "account_mod"


def test_contract_example_is_account_mod():
    assert classify("account/ab/cd/0123456789abcdef0123456789ab-202611") == "account_mod"


@pytest.mark.parametrize("month", ["00", "13", "99"])
def test_a_month_outside_01_12_is_not_account_mod(month):
    assert classify(f"{SPLIT}-2026{month}") == "other"


@pytest.mark.parametrize(
    "name",
    [
        f"{SPLIT}-2026",  # a yearly database
        f"{SPLIT}-20261",  # too short for YYYYMM
        f"{SPLIT}-2026111",  # too long
        f"{SPLIT}-2026ab",
        f"{SPLIT}_202611",
        f"{SPLIT}-provisioner",
        "account/01/23/456789abcdef0123456789abcde",  # 27 characters after the last slash
        "account/01/23/456789abcdef0123456789abcdef0",  # 29
        "account/0/123/456789abcdef0123456789abcdef",  # wrong split
        "account%2F01/23%2F456789abcdef0123456789abcdef",  # mixed separators
        "account%2F01%2f23%2F456789abcdef0123456789abcdef",  # mixed case encodings
        "account/01/23/456789abcdef0123456789abcdeg",  # not hex
        ID[:-1],  # 31 characters
        ID + "0",  # 33
        "g" * 32,  # 32 characters, not hex
        "numbers/+1555",
        "numbers%2F%2B1555",
        "ratedeck_extra",
        "_users",
        "_replicator",
        "",
        "Accounts",  # system names match exactly
        " accounts",
        "system_config_old",
    ],
)
def test_other(name):
    assert classify(name) == "other"


def test_every_listed_system_database():
    listed = [
        "system_data",
        "system_config",
        "system_schemas",
        "system_auth",
        "system_media",
        "sip_auth",
        "accounts",
        "ratedeck",
        "faxes",
        "services",
        "offnet",
        "anonymous_cdrs",
        "port_requests",
        "dedicated_ips",
        "acdc",
        "oauth",
        "functions",
        "webhooks",
        "token_auth",
        "alerts",
        "tasks",
        "pending_notifications",
    ]
    assert set(listed) == SYSTEM_DATABASES
    for name in listed:
        assert classify(name) == "system", name


# --- sources ---------------------------------------------------------------------------------


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_directory_source_walks_recursively_in_name_order(tmp_path):
    root = tmp_path / "dbs"
    _touch(root / "system_config.db")
    _touch(root / "account" / "ab" / "cd" / "0123456789abcdef0123456789ab-202611.db")
    _touch(root / "account" / "ab" / "cd" / "0123456789abcdef0123456789ab.db")
    _touch(root / "zzz.db")
    _touch(root / "notes.txt")  # not a database
    _touch(root / "x.db-wal")  # SQLite side files are not databases
    _touch(root / ".db")  # no name
    dbs = DirectorySource(root).databases()
    assert [(d.name, d.kind) for d in dbs] == [
        ("account/ab/cd/0123456789abcdef0123456789ab", "account"),
        ("account/ab/cd/0123456789abcdef0123456789ab-202611", "account_mod"),
        ("system_config", "system"),
        ("zzz", "other"),
    ]
    assert dbs[2].path == root / "system_config.db"
    assert str(dbs[0]) == dbs[0].name


def test_directory_source_missing_folder_is_empty(tmp_path):
    assert DirectorySource(tmp_path / "nope").databases() == []


def test_directory_source_on_a_file_says_so(tmp_path):
    f = _touch(tmp_path / "file")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        DirectorySource(f).databases()


def test_list_source_sorted_deduplicated_kept_verbatim():
    dbs = ListSource(["tasks", ENC, "tasks", "b", ""]).databases()
    assert [d.name for d in dbs] == sorted({"tasks", ENC, "b"})
    assert {d.name: d.kind for d in dbs}[ENC] == "account"
    assert all(d.path is None for d in dbs)


def test_list_databases_follows_settings(tmp_path):
    settings = make_settings(tmp_path)
    _touch(settings.databases_path / "accounts.db")
    assert list_databases(settings) == [Database("accounts", "system", settings.databases_path / "accounts.db")]
    listed = settings.with_overrides(databases={"source": "list", "names": ("webhooks", ID)})
    assert [(d.name, d.kind) for d in list_databases(listed)] == [(ID, "account"), ("webhooks", "system")]


def test_other_sources_plug_in(tmp_path):
    class Fixed(DatabaseSource):
        def names(self):
            return [("tasks", None), ("a", None)]

    register_source("fixed-test", lambda settings: Fixed())
    settings = make_settings(tmp_path).with_overrides(databases={"source": "fixed-test"})
    assert [d.name for d in list_databases(settings)] == ["a", "tasks"]
    bad = make_settings(tmp_path).with_overrides(databases={"source": "nowhere"})
    with pytest.raises(ValueError, match=re.escape("unknown databases.source 'nowhere'")):
        source_for(bad)
