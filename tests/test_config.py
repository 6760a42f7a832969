"""Configuration: discovery, validation, precedence, the example file (contract 5 and 7)."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest

from kzconsole import config as cfg
from kzconsole.config import (
    DEFAULT_ACCOUNT_ID,
    AccountsSettings,
    ApiSettings,
    ConfigError,
    ConsoleSettings,
    DatabasesSettings,
    EngineSettings,
    PluginsSettings,
    Settings,
    StoreSettings,
    TasksSettings,
    TriggersSettings,
    default_data_dir,
    example_config_text,
    find_config_file,
    load_settings,
    user_config_path,
    write_example_config,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_FILE = REPO_ROOT / "config.example.toml"

SECTIONS = {
    "tasks": TasksSettings,
    "plugins": PluginsSettings,
    "engine": EngineSettings,
    "store": StoreSettings,
    "accounts": AccountsSettings,
    "triggers": TriggersSettings,
    "databases": DatabasesSettings,
    "console": ConsoleSettings,
    "api": ApiSettings,
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A current directory with no kzconsole.toml in it."""
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    """A fake environment: a home of our own, so the real ~/.config is never read."""
    return {"HOME": str(home)}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str, env: dict[str, str], **kwargs) -> Settings:
    path = write(tmp_path / "conf" / "kzconsole.toml", text)
    return load_settings(str(path), env=env, cwd=tmp_path, **kwargs)


# --------------------------------------------------------------------------------------------------
# The example file


def test_example_file_is_the_shipped_text():
    assert EXAMPLE_FILE.read_text(encoding="utf-8") == example_config_text()


def test_example_yields_exactly_the_defaults(tmp_path, env):
    settings = load_settings(str(EXAMPLE_FILE), data_dir=str(tmp_path), env=env, cwd=tmp_path)
    assert settings == Settings(data_dir=tmp_path.resolve(), source=EXAMPLE_FILE)
    # And the defaults are the contract's (section 5).
    assert settings.tasks == TasksSettings(500, 1000, 4, tempfile.gettempdir())
    assert settings.plugins == PluginsSettings((), True, True)
    assert settings.store.url is None
    assert settings.engine == EngineSettings(None)  # the host name
    assert settings.accounts == AccountsSettings(DEFAULT_ACCOUNT_ID, DEFAULT_ACCOUNT_ID)
    assert re.fullmatch(r"[0-9a-f]{32}", DEFAULT_ACCOUNT_ID)
    assert settings.triggers == TriggersSettings(True, 86400, 30)
    assert settings.databases == DatabasesSettings("directory", None, ())
    assert settings.console == ConsoleSettings(5)
    assert settings.api == ApiSettings("127.0.0.1:8000", 50, 3600, 100 * 1024 * 1024, None, None, ("*",))
    assert settings.plugin_options == {}


def _uncommented(text: str) -> str:
    """The example with every commented-out key and table header switched on."""
    return re.sub(r"(?m)^# (?=\[|[a-z_]+ = )", "", text)


def test_example_names_every_key_once(tmp_path, env):
    document = tomllib.loads(_uncommented(example_config_text()))
    assert set(document) == {"data_dir", *SECTIONS, "plugin_options"}
    for name, cls in SECTIONS.items():
        assert set(document[name]) == {f.name for f in dataclasses.fields(cls)}, name
    # The commented-out examples are themselves valid settings.
    settings = load_text(tmp_path, _uncommented(example_config_text()), env)
    assert settings.plugin_options == {"my_plugin": {"greeting": "hello"}}
    assert settings.store.url == "sqlite:////var/lib/kzconsole/kzconsole.db"


def test_every_key_has_a_comment():
    # Keys that go together (account_id, auth_account_id) may share the comment above them.
    key_line = re.compile(r"(# )?[a-z_]+ = ")
    lines = example_config_text().splitlines()
    for index, line in enumerate(lines):
        if key_line.match(line) and not line.startswith("# greeting"):
            above = index - 1
            while key_line.match(lines[above]):
                above -= 1
            assert lines[above].startswith("#"), f"no comment above {line!r}"


def test_checkers_cover_exactly_the_dataclass_fields():
    for name, (cls, checkers) in cfg._SECTIONS.items():
        assert SECTIONS[name] is cls
        assert set(checkers) == {f.name for f in dataclasses.fields(cls)}
    assert set(cfg._SECTIONS) == set(SECTIONS)


def test_write_example_config(tmp_path, env):
    target = tmp_path / "new" / "dir" / "kz.toml"
    written = write_example_config(str(target))
    assert written == target.resolve()
    assert target.read_text(encoding="utf-8") == example_config_text()
    assert load_settings(str(target), data_dir=str(tmp_path), env=env).source == written

    target.write_text("# mine\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="already exists"):
        write_example_config(target)
    assert target.read_text(encoding="utf-8") == "# mine\n"


def test_write_example_config_into_a_folder(tmp_path):
    assert write_example_config(tmp_path) == (tmp_path / "kzconsole.toml").resolve()
    with pytest.raises(ConfigError, match="already exists"):
        write_example_config(tmp_path)


def test_write_example_config_defaults_to_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert write_example_config() == (tmp_path / "kzconsole.toml").resolve()


# --------------------------------------------------------------------------------------------------
# Discovery


def test_discovery_order(tmp_path, home, work, env):
    user = write(home / ".config" / "kzconsole" / "config.toml", "")
    assert find_config_file(None, env=env, cwd=work) == user

    local = write(work / "kzconsole.toml", "")
    assert find_config_file(None, env=env, cwd=work) == local

    from_env = write(tmp_path / "env.toml", "")
    env["KZCONSOLE_CONFIG"] = str(from_env)
    assert find_config_file(None, env=env, cwd=work) == from_env

    explicit = write(tmp_path / "explicit.toml", "")
    assert find_config_file(str(explicit), env=env, cwd=work) == explicit


def test_discovery_none(work, env):
    assert find_config_file(None, env=env, cwd=work) is None
    settings = load_settings(env=env, cwd=work)
    assert settings.source is None
    assert settings == Settings(data_dir=settings.data_dir)


def test_xdg_config_home(tmp_path, home, work, env):
    write(home / ".config" / "kzconsole" / "config.toml", "")
    xdg = write(tmp_path / "xdg" / "kzconsole" / "config.toml", "")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    assert find_config_file(None, env=env, cwd=work) == xdg
    assert user_config_path(env) == xdg
    # A relative XDG value is invalid per the XDG spec and ignored.
    env["XDG_CONFIG_HOME"] = "relative"
    assert user_config_path(env) == home / ".config" / "kzconsole" / "config.toml"


def test_explicit_relative_path_is_taken_from_cwd(work, env):
    path = write(work / "sub" / "my.toml", "")
    assert find_config_file("sub/my.toml", env=env, cwd=work) == path


@pytest.mark.parametrize("how", ["option", "env"])
def test_missing_explicit_file_is_an_error(tmp_path, work, env, how):
    write(work / "kzconsole.toml", "")  # must not be used as a fallback
    missing = str(tmp_path / "nope.toml")
    explicit = missing if how == "option" else None
    if how == "env":
        env["KZCONSOLE_CONFIG"] = missing
    with pytest.raises(ConfigError, match=re.escape("nope.toml: no such config file")) as info:
        find_config_file(explicit, env=env, cwd=work)
    assert info.value.path == Path(missing)
    with pytest.raises(ConfigError):
        load_settings(explicit, env=env, cwd=work)


def test_explicit_folder_is_an_error(tmp_path, env):
    with pytest.raises(ConfigError, match="not a file"):
        find_config_file(str(tmp_path), env=env)


def test_empty_env_variable_counts_as_unset(work, env):
    env["KZCONSOLE_CONFIG"] = ""
    assert find_config_file(None, env=env, cwd=work) is None


# --------------------------------------------------------------------------------------------------
# Validation


def test_values_are_read(tmp_path, env):
    settings = load_text(
        tmp_path,
        """
        [tasks]
        wait_after_row_ms = 0
        send_progress_after_processed = 1
        max_running = 2
        [plugins]
        reload = false
        strict_permissions = false
        [store]
        url = "sqlite:////srv/kz.db"
        [accounts]
        account_id = "0123456789abcdef0123456789abcdef"
        [triggers]
        enabled = false
        browse_dbs_interval_s = 60
        history_days = 7
        [databases]
        source = "list"
        names = ["account/ab/cd/0123456789abcdef0123456789ab", "system_config"]
        [console]
        refresh_hz = 20
        [plugin_options.numbers]
        country = "US"
        limits = {max = 3}
        """,
        env,
    )
    assert settings.tasks.wait_after_row_ms == 0
    assert settings.tasks.send_progress_after_processed == 1
    assert settings.tasks.max_running == 2
    assert settings.plugins.reload is False and settings.plugins.strict_permissions is False
    assert settings.store_url == "sqlite:////srv/kz.db"
    assert settings.accounts.account_id == "0123456789abcdef0123456789abcdef"
    assert settings.accounts.auth_account_id == DEFAULT_ACCOUNT_ID
    assert settings.triggers == TriggersSettings(False, 60, 7)
    assert settings.databases.source == "list"
    assert settings.databases.names == ("account/ab/cd/0123456789abcdef0123456789ab", "system_config")
    assert settings.console.refresh_hz == 20
    assert settings.plugin_options == {"numbers": {"country": "US", "limits": {"max": 3}}}


def test_error_message_format(tmp_path, env):
    path = write(tmp_path / "kzconsole.toml", "[tasks]\nmax_running = 'x'\n")
    with pytest.raises(ConfigError) as info:
        load_settings(str(path), env=env)
    assert str(info.value) == f"{path}: tasks.max_running: expected an integer >= 1, got 'x'"
    assert info.value.key == "tasks.max_running"
    assert info.value.path == path


@pytest.mark.parametrize(
    "text, key, message",
    [
        ("[tasks]\nmax_runing = 2", "tasks.max_runing", "unknown key (did you mean 'max_running'?"),
        ("[task]\nmax_running = 2", "task", "unknown key (did you mean 'tasks'?"),
        ("colour = 'red'", "colour", "unknown key"),
        ("[store]\nurl = 'sqlite:////x'\npath = 'x'", "store.path", "unknown key"),
    ],
)
def test_unknown_key(tmp_path, env, text, key, message):
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text, env)
    assert f"kzconsole.toml: {key}: {message}" in str(info.value)
    assert info.value.key == key


@pytest.mark.parametrize(
    "text, key, expected",
    [
        ("[tasks]\nmax_running = true", "tasks.max_running", "expected an integer >= 1, got true"),
        ("[tasks]\nmax_running = 0", "tasks.max_running", "expected an integer >= 1, got 0"),
        ("[tasks]\nmax_running = 2.0", "tasks.max_running", "got 2.0"),
        (
            "[tasks]\nwait_after_row_ms = -1",
            "tasks.wait_after_row_ms",
            "expected an integer from 0 to 86400000, got -1",
        ),
        # Unbounded, it overflowed the store's integers (issue 11.3).
        ("[tasks]\nwait_after_row_ms = 99999999999999999", "tasks.wait_after_row_ms", "from 0 to 86400000"),
        (
            "[store]\nurl = 'mysql://x'",
            "store.url",
            "unsupported store URL 'mysql://x': the stores are 'sqlite://...' or 'postgresql://...' or 'postgres://...'",
        ),
        ("[store]\nurl = 'postgresql://kz@db:port/kz'", "store.url", "not a PostgreSQL URL"),
        ("[store]\nurl = 'sqlite://'", "store.url", "expected sqlite:///PATH"),
        ("[store]\nurl = 'sqlite:///'", "store.url", "expected sqlite:///PATH"),
        ("[accounts]\naccount_id = '0123456789ABCDEF0123456789ABCDEF'", "accounts.account_id", "in lower case"),
        # pathlib raises RuntimeError for an unknown ~user: it was a traceback.
        ("[store]\nurl = 'sqlite:///~nobody-kz-test/kz.db'", "store.url", "no such user"),
        ("data_dir = '~nobody-kz-test/d'", "data_dir", "no such user"),
        ("[tasks]\nsend_progress_after_processed = 0", "tasks.send_progress_after_processed", ">= 1"),
        ("[tasks]\noutput_fallback_dir = 3", "tasks.output_fallback_dir", "expected a path"),
        ("[tasks]\noutput_fallback_dir = ''", "tasks.output_fallback_dir", "expected a path"),
        ("[triggers]\nbrowse_dbs_interval_s = 0", "triggers.browse_dbs_interval_s", ">= 1, got 0"),
        ("[triggers]\nenabled = 'yes'", "triggers.enabled", "expected true or false, got 'yes'"),
        ("[triggers]\nhistory_days = 0", "triggers.history_days", ">= 1"),
        ("[plugins]\npaths = 'plugins'", "plugins.paths", "expected a list of paths, got 'plugins'"),
        ("[plugins]\npaths = ['a', 2]", "plugins.paths", "item 2: expected a path"),
        ("[plugins]\nreload = 1", "plugins.reload", "expected true or false, got 1"),
        ("[store]\nurl = 'kz.db'", "store.url", "expected a store URL"),
        ("[accounts]\naccount_id = 'abc'", "accounts.account_id", "32 lowercase hex"),
        ("[accounts]\nauth_account_id = 12", "accounts.auth_account_id", "32 lowercase hex"),
        ("[databases]\nsource = 'couch'", "databases.source", "expected 'directory' or 'list', got 'couch'"),
        ("[databases]\nnames = ['a', '']", "databases.names", "item 2: expected a non-empty string"),
        ("[console]\nrefresh_hz = 0", "console.refresh_hz", "expected an integer from 1 to 60, got 0"),
        ("[api]\nlisten = '8000'", "api.listen", "expected HOST:PORT"),
        ("[api]\nlisten = 'localhost:99999'", "api.listen", "expected HOST:PORT"),
        ("[api]\npage_size = 0", "api.page_size", "expected an integer from 1 to 10000, got 0"),
        ("[api]\nmax_upload_bytes = 0", "api.max_upload_bytes", ">= 1"),
        ("[api]\ncors_origins = ['monster.example.com']", "api.cors_origins", "item 1: expected"),
        ("[api]\ntls_cert = 'cert.pem'", "api.tls_key", "TLS needs both api.tls_cert and api.tls_key"),
        ("tasks = 3", "tasks", "expected a table ([tasks]), got 3"),
        ("plugin_options = 3", "plugin_options", "expected a table"),
        ("[plugin_options]\nnumbers = 3", "plugin_options.numbers", "expected a table"),
        ("data_dir = false", "data_dir", "expected a path"),
    ],
)
def test_wrong_type(tmp_path, env, text, key, expected):
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text, env)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'conf' / 'kzconsole.toml'}: {key}: "), message
    assert expected in message
    assert info.value.key == key


def test_syntax_error_names_file_and_line(tmp_path, env):
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, "[tasks]\nmax_running = 2\nwait_after_row_ms = = 3\n", env)
    assert info.value.line == 3
    expected = rf"{re.escape(str(tmp_path))}.*kzconsole\.toml: line 3, column \d+: invalid TOML: "
    assert re.match(expected, str(info.value))


def test_syntax_error_at_end_of_file(tmp_path, env):
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, "[tasks]\nmax_running = [1,\n", env)
    assert info.value.line == 2
    assert "kzconsole.toml: line 2 (end of file): invalid TOML" in str(info.value)


def test_duplicate_table_is_a_syntax_error(tmp_path, env):
    with pytest.raises(ConfigError, match="line 3"):
        load_text(tmp_path, "[tasks]\nmax_running = 2\n[tasks]\n", env)


def test_invalid_utf8_names_the_line(tmp_path, env):
    path = tmp_path / "kzconsole.toml"
    path.write_bytes(b"[tasks]\n# caf\xe9\nmax_running = 2\n")
    with pytest.raises(ConfigError, match=r"kzconsole\.toml: line 2: invalid UTF-8") as info:
        load_settings(str(path), env=env)
    assert info.value.line == 2


# --------------------------------------------------------------------------------------------------
# Paths and precedence


def test_relative_paths_are_resolved_against_the_file(tmp_path, work, env):
    conf = tmp_path / "conf"
    path = write(
        conf / "kzconsole.toml",
        'data_dir = "data"\n'
        '[tasks]\noutput_fallback_dir = "../fallback"\n'
        '[plugins]\npaths = ["plugins", "/abs/plugins"]\n'
        '[databases]\npath = "dbs"\n',
    )
    # cwd is elsewhere: the file's folder, not the current directory, anchors its paths.
    settings = load_settings(str(path), env=env, cwd=work)
    assert settings.data_dir == (conf / "data").resolve()
    assert settings.tasks.output_fallback_dir == str((tmp_path / "fallback").resolve())
    assert settings.plugins.paths == (str((conf / "plugins").resolve()), "/abs/plugins")
    assert settings.databases_path == (conf / "dbs").resolve()


def test_tilde_is_expanded(tmp_path, env, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "realhome"))
    settings = load_text(tmp_path, '[plugins]\npaths = ["~/plugins"]\n[store]\nurl = "sqlite:///~/kz.db"\n', env)
    assert settings.plugins.paths == (str((tmp_path / "realhome" / "plugins").resolve()),)
    assert settings.store_url == f"sqlite:///{tmp_path / 'realhome' / 'kz.db'}"


def test_extra_plugin_paths_are_appended(tmp_path, work, env):
    conf = tmp_path / "conf"
    settings = load_text(tmp_path, '[plugins]\npaths = ["a", "b"]\n', env, extra_plugin_paths=["mine", str(conf / "a")])
    # Relative --plugins paths are taken from the current directory; a folder named twice once.
    assert settings.plugins.paths == (
        str((conf / "a").resolve()),
        str((conf / "b").resolve()),
        str((tmp_path / "mine").resolve()),
    )


def test_extra_plugin_paths_without_a_file(work, env):
    settings = load_settings(extra_plugin_paths=["p1", "p2"], env=env, cwd=work)
    assert settings.source is None
    assert settings.plugins.paths == (str(work / "p1"), str(work / "p2"))


def test_data_dir_precedence(tmp_path, home, work, env):
    conf = write(tmp_path / "conf" / "kzconsole.toml", 'data_dir = "from-file"\n')
    env["KZCONSOLE_CONFIG"] = str(conf)

    # default: $XDG_DATA_HOME/kzconsole, else ~/.local/share/kzconsole
    plain = {"HOME": str(home)}
    assert load_settings(env=plain, cwd=work).data_dir == home / ".local" / "share" / "kzconsole"
    assert default_data_dir(plain) == home / ".local" / "share" / "kzconsole"
    xdg = {"HOME": str(home), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    assert load_settings(env=xdg, cwd=work).data_dir == tmp_path / "xdg" / "kzconsole"

    # the file's data_dir beats the default
    assert load_settings(env=env, cwd=work).data_dir == tmp_path / "conf" / "from-file"

    # $KZCONSOLE_DATA_DIR beats the file (relative: from the current directory)
    env["KZCONSOLE_DATA_DIR"] = "from-env"
    assert load_settings(env=env, cwd=work).data_dir == work / "from-env"
    assert default_data_dir({"KZCONSOLE_DATA_DIR": str(tmp_path / "e")}) == tmp_path / "e"

    # --data-dir beats everything
    assert load_settings(data_dir="from-option", env=env, cwd=work).data_dir == work / "from-option"


def test_a_relative_sqlite_path_is_relative_to_the_config_file(tmp_path, work, env):
    # It used to be taken from the filesystem root: sqlite:///relative.db wrote /relative.db.
    settings = load_text(tmp_path, '[store]\nurl = "sqlite:///stores/kz.db"\n', env)
    assert settings.store_url == f"sqlite:///{(tmp_path / 'conf' / 'stores' / 'kz.db').resolve()}"
    absolute = load_text(tmp_path, '[store]\nurl = "sqlite:////srv/kz.db"\n', env)
    assert absolute.store_url == "sqlite:////srv/kz.db"  # as written


def test_an_old_style_absolute_sqlite_path_is_not_taken_for_a_new_store(tmp_path, env):
    # sqlite:///tmp/... once meant /tmp/...: when that file exists and the relative one does
    # not, the message says how to write it, instead of opening an empty store.
    existing = tmp_path / "old.db"
    existing.write_bytes(b"")
    raw = str(existing).lstrip("/")
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, f'[store]\nurl = "sqlite:///{raw}"\n', env)
    message = str(info.value)
    assert "store.url" in message and f"'sqlite:////{raw}'" in message


def test_store_url_schemes_are_a_table(tmp_path, env, monkeypatch):
    from kzconsole import config

    monkeypatch.setitem(config.STORE_URL_SCHEMES, "postgresql", lambda value, base: value)
    settings = load_text(tmp_path, '[store]\nurl = "postgresql://kz@db/kz"\n', env)
    assert settings.store_url == "postgresql://kz@db/kz"
    with pytest.raises(ConfigError, match=re.escape("'sqlite://...' or 'postgresql://...'")):
        load_text(tmp_path, '[store]\nurl = "mysql://x"\n', env)
    assert config.resolve_store_url("sqlite:///a.db", tmp_path) == f"sqlite:///{tmp_path / 'a.db'}"
    with pytest.raises(ValueError, match="unsupported store URL 'mysql://x'"):
        config.resolve_store_url("mysql://x", tmp_path)


def test_an_unknown_user_on_the_command_line_names_the_option(tmp_path, env):
    for kwargs, origin in (
        ({"data_dir": "~nobody-kz-test/d"}, "--data-dir"),
        ({"extra_plugin_paths": ["~nobody-kz-test/p"]}, "--plugins"),
    ):
        with pytest.raises(ConfigError, match=f"^{origin}: cannot expand '~nobody-kz-test/.': no such user"):
            load_settings(env=env, cwd=tmp_path, **kwargs)


def test_store_url_and_databases_path_follow_the_data_dir(tmp_path, work, env):
    settings = load_settings(data_dir=str(tmp_path / "d"), env=env, cwd=work)
    assert settings.store_url == f"sqlite:///{tmp_path / 'd' / 'kzconsole.db'}"
    assert settings.databases_path == tmp_path / "d" / "databases"
    moved = settings.with_overrides(data_dir=tmp_path / "e")
    assert moved.store_url == f"sqlite:///{tmp_path / 'e' / 'kzconsole.db'}"
    assert moved.databases_path == tmp_path / "e" / "databases"


def test_with_overrides(tmp_path, work, env):
    settings = load_settings(data_dir=str(tmp_path), env=env, cwd=work)
    changed = settings.with_overrides(tasks={"max_running": 1}, console=ConsoleSettings(refresh_hz=5))
    assert changed.tasks == dataclasses.replace(settings.tasks, max_running=1)
    assert changed.console.refresh_hz == 5
    assert settings.tasks.max_running == 4  # the original is untouched
    assert changed.with_overrides(data_dir=str(work)).data_dir == work.resolve()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.tasks.max_running = 9  # type: ignore[misc]


def test_no_ui_imports():
    code = (
        "import sys, kzconsole.config\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)
