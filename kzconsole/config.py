"""Configuration: the settings dataclasses, finding and validating the TOML file, `config init`.

Contract section 5 and the `--config` / `--data-dir` / `--plugins` options of section 7.

The file is read with :mod:`tomllib` and checked strictly: an unknown key or a value of the wrong
type is a :class:`ConfigError` that names the dotted key and the file, because a misspelt key that
is silently ignored leaves an operator wondering why the setting "does not work". The only place
for keys kzconsole does not know is ``[plugin_options.<plugin>]``, which plugins read themselves.

Precedence, highest first:

- the file: ``--config FILE``, else ``$KZCONSOLE_CONFIG``, else ``./kzconsole.toml``, else
  ``($XDG_CONFIG_HOME or ~/.config)/kzconsole/config.toml``, else built-in defaults;
- the data dir: ``--data-dir``, else ``$KZCONSOLE_DATA_DIR``, else the file's top-level
  ``data_dir``, else ``($XDG_DATA_HOME or ~/.local/share)/kzconsole``;
- plugin folders: the file's ``plugins.paths`` then each ``--plugins DIR`` (duplicates dropped).

Relative paths in the file are taken relative to the file's folder (so a config file means the same
thing whatever directory kzconsole is started from); relative paths given on the command line or in
the environment are taken relative to the current directory. ``~`` is expanded in both.

This module imports neither Textual nor Rich: the engine and the command line use it.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ConfigError",
    "TasksSettings",
    "PluginsSettings",
    "StoreSettings",
    "EngineSettings",
    "AccountsSettings",
    "TriggersSettings",
    "DatabasesSettings",
    "ConsoleSettings",
    "ApiSettings",
    "Settings",
    "DEFAULT_ACCOUNT_ID",
    "CONFIG_FILE_NAME",
    "ENV_CONFIG",
    "ENV_DATA_DIR",
    "find_config_file",
    "user_config_path",
    "default_data_dir",
    "load_settings",
    "resolve_store_url",
    "STORE_URL_SCHEMES",
    "example_config_text",
    "check_node_name",
    "write_example_config",
]

# The account used when a job is created without one (contract 5, `accounts.*`).
DEFAULT_ACCOUNT_ID = "0" * 32

CONFIG_FILE_NAME = "kzconsole.toml"  # looked for in the current directory
ENV_CONFIG = "KZCONSOLE_CONFIG"
ENV_DATA_DIR = "KZCONSOLE_DATA_DIR"


class ConfigError(Exception):
    """A configuration problem, with a message that says what and where.

    ``str(err)`` is the full message (``"FILE: KEY: problem"``); ``path``, ``key`` and ``line`` are
    there for callers that want to show them apart (``None`` when they do not apply).
    """

    def __init__(
        self, message: str, *, path: Path | str | None = None, key: str | None = None, line: int | None = None
    ) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None
        self.key = key
        self.line = line


# --------------------------------------------------------------------------------------------------
# The settings


@dataclass(frozen=True)
class TasksSettings:
    wait_after_row_ms: int = 500
    send_progress_after_processed: int = 1000
    max_running: int = 4
    output_fallback_dir: str = tempfile.gettempdir()


@dataclass(frozen=True)
class PluginsSettings:
    paths: tuple[str, ...] = ()
    reload: bool = True
    # When running as root, refuse plugin files/folders writable by group or others or owned by
    # another user (like sshd's StrictModes): loading a plugin runs its code as root.
    strict_permissions: bool = True


@dataclass(frozen=True)
class StoreSettings:
    url: str | None = None  # None: sqlite:///<data dir>/kzconsole.db (see Settings.store_url)


@dataclass(frozen=True)
class EngineSettings:
    # This node's name in a cluster (job records' `node`, `kzconsole nodes`); None: the host name.
    node: str | None = None


@dataclass(frozen=True)
class AccountsSettings:
    account_id: str = DEFAULT_ACCOUNT_ID
    auth_account_id: str = DEFAULT_ACCOUNT_ID


@dataclass(frozen=True)
class TriggersSettings:
    enabled: bool = True
    browse_dbs_interval_s: int = 86400
    history_days: int = 30


@dataclass(frozen=True)
class DatabasesSettings:
    source: str = "directory"  # "directory" | "list"
    path: str | None = None  # None: <data dir>/databases (see Settings.databases_path)
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConsoleSettings:
    refresh_hz: int = 5


@dataclass(frozen=True)
class ApiSettings:
    """``kzconsole serve``, the REST API (contract 8)."""

    listen: str = "127.0.0.1:8000"
    page_size: int = 50
    token_ttl_s: int = 3600
    max_upload_bytes: int = 100 * 1024 * 1024
    tls_cert: str | None = None
    tls_key: str | None = None
    cors_origins: tuple[str, ...] = ("*",)
    page_cache_mb: int = 16
    job_cache_mb: int = 16


def _default_data_dir_factory() -> Path:
    return default_data_dir()


@dataclass(frozen=True)
class Settings:
    """Everything configurable, resolved. Build it with :func:`load_settings`."""

    tasks: TasksSettings = field(default_factory=TasksSettings)
    plugins: PluginsSettings = field(default_factory=PluginsSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    accounts: AccountsSettings = field(default_factory=AccountsSettings)
    triggers: TriggersSettings = field(default_factory=TriggersSettings)
    databases: DatabasesSettings = field(default_factory=DatabasesSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    # [plugin_options.<plugin>] tables, as read: plugins check their own settings.
    plugin_options: dict[str, Any] = field(default_factory=dict)
    data_dir: Path = field(default_factory=_default_data_dir_factory)
    source: Path | None = None  # the file read, or None for built-in defaults

    def __post_init__(self) -> None:
        # Accept a str for convenience (tests, with_overrides) but always hold an absolute Path,
        # so two processes given the same folder agree on the store's location.
        if not isinstance(self.data_dir, Path) or not self.data_dir.is_absolute():
            object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().resolve())

    @property
    def store_url(self) -> str:
        """``store.url``, or the SQLite file ``sqlite:///<data_dir>/kzconsole.db``."""
        if self.store.url is not None:
            return self.store.url
        return f"sqlite:///{self.data_dir / 'kzconsole.db'}"

    @property
    def databases_path(self) -> Path:
        """The ``directory`` source's folder: ``databases.path`` or <data dir>/databases."""
        if self.databases.path is not None:
            return Path(self.databases.path)
        return self.data_dir / "databases"

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields replaced (:func:`dataclasses.replace`).

        As a convenience a section may be given as a mapping of the fields to change in it:
        ``settings.with_overrides(tasks={"max_running": 1}, data_dir=tmp)``.
        """
        for name, value in list(changes.items()):
            current = getattr(self, name, None)
            if dataclasses.is_dataclass(current) and not isinstance(current, type) and isinstance(value, Mapping):
                changes[name] = dataclasses.replace(current, **value)
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------------------------------
# Finding the file and the data dir


def _env_value(env: Mapping[str, str], name: str) -> str | None:
    # An empty variable counts as unset (as the XDG spec says for its own variables), so that
    # `KZCONSOLE_CONFIG= kzconsole ...` turns the variable off instead of naming "".
    value = env.get(name)
    return value if value else None


def _home(env: Mapping[str, str]) -> Path:
    home = _env_value(env, "HOME")
    return Path(home) if home else Path.home()


def _xdg_dir(env: Mapping[str, str], name: str, fallback: str) -> Path:
    value = _env_value(env, name)
    # The XDG spec says a relative value is invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return _home(env) / fallback


def _cwd(cwd: str | os.PathLike[str] | None) -> Path:
    return Path(cwd) if cwd is not None else Path.cwd()


def _absolute(raw: str | os.PathLike[str], base: Path, origin: str | None = None) -> Path:
    """``raw`` made absolute from ``base``, ``~`` expanded. An unknown ``~user`` is _Invalid
    (the caller names the key), or a ConfigError naming ``origin`` (an option, a variable)."""
    try:
        path = Path(raw).expanduser()
    except RuntimeError:  # pathlib's "Could not determine home directory"
        message = f"cannot expand {str(raw)!r}: no such user, or no home folder"
        if origin is None:
            raise _Invalid(message) from None
        raise ConfigError(f"{origin}: {message}") from None
    if not path.is_absolute():
        path = base / path
    return path.resolve()


def user_config_path(env: Mapping[str, str] = os.environ) -> Path:
    """The per-user config file: ``($XDG_CONFIG_HOME or ~/.config)/kzconsole/config.toml``."""
    return _xdg_dir(env, "XDG_CONFIG_HOME", ".config") / "kzconsole" / "config.toml"


def find_config_file(
    explicit: str | os.PathLike[str] | None,
    *,
    env: Mapping[str, str] = os.environ,
    cwd: str | os.PathLike[str] | None = None,
) -> Path | None:
    """The config file to read, or None when there is none (built-in defaults then apply).

    ``--config`` (``explicit``), else ``$KZCONSOLE_CONFIG``, else ``./kzconsole.toml``, else
    :func:`user_config_path`. A file named explicitly (option or variable) must exist: naming a
    missing file is a mistake worth stopping for, not a reason to fall back to defaults.
    """
    base = _cwd(cwd)
    named: list[tuple[str, str | os.PathLike[str]]] = []
    if explicit is not None and str(explicit) != "":
        named.append(("--config", explicit))
    else:
        from_env = _env_value(env, ENV_CONFIG)
        if from_env is not None:
            named.append((f"${ENV_CONFIG}", from_env))
    for origin, raw in named:
        path = _absolute(raw, base, origin)
        if not path.exists():
            raise ConfigError(f"{path}: no such config file (given by {origin})", path=path)
        if not path.is_file():
            raise ConfigError(f"{path}: not a file (given by {origin})", path=path)
        return path
    for candidate in (base / CONFIG_FILE_NAME, user_config_path(env)):
        if candidate.is_file():
            return _absolute(candidate, base)
    return None


def default_data_dir(env: Mapping[str, str] = os.environ) -> Path:
    """``$KZCONSOLE_DATA_DIR``, else ``($XDG_DATA_HOME or ~/.local/share)/kzconsole`` (absolute)."""
    from_env = _env_value(env, ENV_DATA_DIR)
    if from_env is not None:
        return _absolute(from_env, Path.cwd(), f"${ENV_DATA_DIR}")
    return _absolute(_xdg_dir(env, "XDG_DATA_HOME", ".local/share") / "kzconsole", Path.cwd())


# --------------------------------------------------------------------------------------------------
# Validation: one checker per key. A checker takes the raw TOML value and returns the setting's
# value, or raises _Invalid with what was expected; the caller adds the file and the dotted key.


class _Invalid(Exception):
    pass


def _show(value: Any) -> str:
    """A value as the operator wrote it (roughly TOML), short enough for one line."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dict):
        text = "a table"
    elif isinstance(value, (datetime.date, datetime.time)):
        text = value.isoformat()
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_Checker = Callable[[Any, Path], Any]  # (raw value, folder of the file) -> setting value


def _integer(minimum: int, maximum: int | None = None) -> _Checker:
    expected = f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"

    def check(value: Any, base: Path) -> int:
        # bool is an int in Python, but `max_running = true` is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"expected {expected}, got {_show(value)}")
        if value < minimum or (maximum is not None and value > maximum):
            raise _Invalid(f"expected {expected}, got {_show(value)}")
        return value

    return check


def _boolean(value: Any, base: Path) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {_show(value)}")
    return value


def _text(value: Any, base: Path) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"expected a non-empty string, got {_show(value)}")
    return value


def _path(value: Any, base: Path) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"expected a path (a non-empty string), got {_show(value)}")
    return str(_absolute(value, base))


def _list_of(item: _Checker, what: str) -> _Checker:
    def check(value: Any, base: Path) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise _Invalid(f"expected a list of {what}, got {_show(value)}")
        out = []
        for index, element in enumerate(value):
            try:
                out.append(item(element, base))
            except _Invalid as exc:
                raise _Invalid(f"item {index + 1}: {exc}") from None
        return tuple(out)

    return check


def _choice(*options: str) -> _Checker:
    expected = " or ".join(repr(o) for o in options)

    def check(value: Any, base: Path) -> str:
        if value not in options or not isinstance(value, str):
            raise _Invalid(f"expected {expected}, got {_show(value)}")
        return value

    return check


_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def _node_name(value: Any, base: Path) -> str:
    """A node name (``engine.node``, ``--node``): letters, digits, ``.``, ``_`` and ``-``, at most
    63 characters, as host names go."""
    if not isinstance(value, str) or not _NODE_NAME.fullmatch(value):
        raise _Invalid(f"expected a node name (letters, digits, '.', '_', '-'; at most 63), got {_show(value)}")
    return value


def check_node_name(value: str) -> str:
    """``value`` if it is a valid node name, else ValueError saying what is expected."""
    try:
        return _node_name(value, Path.cwd())
    except _Invalid as exc:
        raise ValueError(str(exc)) from None


def _account_id(value: Any, base: Path) -> str:
    from kzconsole.engine import check_account_id  # the engine's rule, for every caller

    try:
        return check_account_id(value)
    except ValueError as exc:
        raise _Invalid(str(exc)) from None


def _wait_ms(value: Any, base: Path) -> int:
    from kzconsole.engine import MAX_WAIT_MS

    return _integer(0, MAX_WAIT_MS)(value, base)


# --- store.url --------------------------------------------------------------------------------
#
# One entry per URL scheme a store backend serves: the checker takes the URL as written and the
# folder of the config file, and returns the URL the store opens (paths made absolute) or raises
# _Invalid saying what is wrong. A backend that serves more schemes adds its entries here.


def _sqlite_url(value: str, base: Path) -> str:
    """``sqlite:////abs/path.db`` (absolute), ``sqlite:///relative.db`` (relative to the config
    file's folder, like every other path in it), ``sqlite:///~/kz.db`` (the home folder)."""
    prefix = "sqlite:///"
    if not value.startswith(prefix) or not value[len(prefix) :].strip("/"):
        raise _Invalid(f"expected sqlite:///PATH (a database file), got {_show(value)}")
    raw = value[len(prefix) :]
    if raw.startswith("/"):
        return prefix + "/" + raw.lstrip("/")  # absolute: kept as written
    path = _absolute(raw, base)
    if not raw.startswith("~") and not path.exists() and Path("/" + raw).exists():
        # sqlite:///var/lib/kz.db used to name /var/lib/kz.db: say so rather than quietly open
        # a new, empty store beside the config file.
        raise _Invalid(
            f"{_show(value)} is relative to this file's folder ({path}, which does not exist); "
            f"for /{raw} write 'sqlite:////{raw}'"
        )
    return prefix + str(path)


def _postgresql_url(value: str, base: Path) -> str:
    """``postgresql://[USER[:PASSWORD]@][HOST][:PORT]/DATABASE[?PARAM=VALUE...]``: the cluster
    store (contract 9), any libpq URL (``?host=/run/postgresql`` for a Unix socket)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise _Invalid(f"not a PostgreSQL URL ({exc})") from None
    if parts.scheme not in ("postgresql", "postgres") or any(c.isspace() for c in value):
        raise _Invalid("expected postgresql://USER@HOST:PORT/DATABASE")
    return value


STORE_URL_SCHEMES: dict[str, _Checker] = {
    "sqlite": _sqlite_url,
    "postgresql": _postgresql_url,  # the cluster store (owner: pg)
    "postgres": _postgresql_url,
}


def resolve_store_url(value: Any, base: Path) -> str:
    """A store URL checked and made absolute (relative paths from ``base``); ValueError says
    why it is not one. For URLs given elsewhere than the config file (a command's argument)."""
    try:
        return _store_url(value, base)
    except _Invalid as exc:
        raise ValueError(str(exc)) from None


_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def _store_url(value: Any, base: Path) -> str:
    examples = " or ".join(f"'{scheme}://...'" for scheme in STORE_URL_SCHEMES)
    found = _URL.match(value) if isinstance(value, str) else None
    if found is None:
        raise _Invalid(f"expected a store URL ({examples}), got {_show(value)}")
    checker = STORE_URL_SCHEMES.get(found.group(1).lower())
    if checker is None:
        raise _Invalid(f"unsupported store URL {_show(value)}: the stores are {examples}")
    return checker(value, base)


def split_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8000`` for IPv6) as (host, port); ValueError saying what is wrong."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected HOST:PORT (such as 127.0.0.1:8000), got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _listen(value: Any, base: Path) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected HOST:PORT (such as 127.0.0.1:8000), got {_show(value)}")
    try:
        split_listen(value)
    except ValueError as exc:
        raise _Invalid(str(exc)) from None
    return value


def _origin(value: Any, base: Path) -> str:
    if value == "*" or (isinstance(value, str) and re.fullmatch(r"https?://[^/\s]+", value)):
        return value
    raise _Invalid(f'expected "*" or an origin such as "https://monster.example.com", got {_show(value)}')


_SECTIONS: dict[str, tuple[type, dict[str, _Checker]]] = {
    "tasks": (
        TasksSettings,
        {
            "wait_after_row_ms": _wait_ms,
            "send_progress_after_processed": _integer(1),
            "max_running": _integer(1),
            "output_fallback_dir": _path,
        },
    ),
    "plugins": (
        PluginsSettings,
        {"paths": _list_of(_path, "paths"), "reload": _boolean, "strict_permissions": _boolean},
    ),
    "store": (StoreSettings, {"url": _store_url}),
    "engine": (EngineSettings, {"node": _node_name}),
    "accounts": (AccountsSettings, {"account_id": _account_id, "auth_account_id": _account_id}),
    "triggers": (
        TriggersSettings,
        {"enabled": _boolean, "browse_dbs_interval_s": _integer(1), "history_days": _integer(1)},
    ),
    "databases": (
        DatabasesSettings,
        {"source": _choice("directory", "list"), "path": _path, "names": _list_of(_text, "database names")},
    ),
    "console": (ConsoleSettings, {"refresh_hz": _integer(1, 60)}),
    "api": (
        ApiSettings,
        {
            "listen": _listen,
            "page_size": _integer(1, 10000),
            "token_ttl_s": _integer(1),
            "max_upload_bytes": _integer(1),
            "tls_cert": _path,
            "tls_key": _path,
            "cors_origins": _list_of(_origin, "origins"),
            "page_cache_mb": _integer(0, 4096),
            "job_cache_mb": _integer(0, 4096),
        },
    ),
}

_TOP_LEVEL_KEYS = ("data_dir", *_SECTIONS, "plugin_options")


def _unknown_key(where: Path, key: str, name: str, known: Sequence[str]) -> ConfigError:
    hint = difflib.get_close_matches(name, known, n=1)
    suggestion = f"did you mean {hint[0]!r}? " if hint else ""
    return ConfigError(f"{where}: {key}: unknown key ({suggestion}known keys: {', '.join(known)})", path=where, key=key)


def _check_table(where: Path, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key}: expected a table ([{key}]), got {_show(value)}", path=where, key=key)
    return value


def _build(document: dict[str, Any], where: Path) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """Check a parsed document: (section objects, plugin_options, data_dir or None)."""
    base = where.parent
    for name in document:
        if name not in _TOP_LEVEL_KEYS:
            raise _unknown_key(where, name, name, _TOP_LEVEL_KEYS)

    sections: dict[str, Any] = {}
    for section, (cls, checkers) in _SECTIONS.items():
        table = _check_table(where, section, document.get(section, {}))
        values = {}
        for name, raw in table.items():
            key = f"{section}.{name}"
            checker = checkers.get(name)
            if checker is None:
                raise _unknown_key(where, key, name, tuple(checkers))
            try:
                values[name] = checker(raw, base)
            except _Invalid as exc:
                raise ConfigError(f"{where}: {key}: {exc}", path=where, key=key) from None
        sections[section] = cls(**values)
    api = sections["api"]
    if (api.tls_cert is None) != (api.tls_key is None):
        missing = "api.tls_key" if api.tls_key is None else "api.tls_cert"
        raise ConfigError(f"{where}: {missing}: TLS needs both api.tls_cert and api.tls_key", path=where, key=missing)

    plugin_options = _check_table(where, "plugin_options", document.get("plugin_options", {}))
    for plugin, options in plugin_options.items():
        # One table per plugin keeps plugins from treading on each other's keys.
        _check_table(where, f"plugin_options.{plugin}", options)

    data_dir = None
    if "data_dir" in document:
        try:
            data_dir = _path(document["data_dir"], base)
        except _Invalid as exc:
            raise ConfigError(f"{where}: data_dir: {exc}", path=where, key="data_dir") from None
    return sections, plugin_options, data_dir


_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)\s*$")


def _read_document(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or exc
        raise ConfigError(f"{path}: cannot read the config file: {reason}", path=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: invalid UTF-8", path=path, line=line) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's TOMLDecodeError has no line attribute: the position is in the message.
        message = str(exc)
        found = _TOML_POSITION.search(message)
        reason = message[: found.start()] if found else message
        if found and found.group(1):
            line = int(found.group(1))
            where = f"line {line}, column {found.group(2)}"
        else:
            line = max(1, len(text.splitlines()))
            where = f"line {line} (end of file)"
        message = f"{path}: {where}: invalid TOML: {reason}"
        raise ConfigError(message, path=path, line=line) from None


# --------------------------------------------------------------------------------------------------
# Loading


def load_settings(
    config: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    extra_plugin_paths: Sequence[str | os.PathLike[str]] = (),
    env: Mapping[str, str] = os.environ,
    cwd: str | os.PathLike[str] | None = None,
) -> Settings:
    """The settings for this process: the file found by :func:`find_config_file`, checked, with the
    command line's ``--data-dir`` (``data_dir``) and ``--plugins`` (``extra_plugin_paths``) applied.

    Raises :class:`ConfigError` for a missing explicit file, a TOML syntax error (with its line),
    an unknown key or a value of the wrong type (with the dotted key).
    """
    base = _cwd(cwd)
    source = find_config_file(config, env=env, cwd=base)
    if source is not None:
        sections, plugin_options, file_data_dir = _build(_read_document(source), source)
    else:
        sections = {name: cls() for name, (cls, _) in _SECTIONS.items()}
        plugin_options, file_data_dir = {}, None

    from_env = _env_value(env, ENV_DATA_DIR)
    if data_dir is not None and str(data_dir) != "":
        resolved_data_dir = _absolute(data_dir, base, "--data-dir")
    elif from_env is not None:
        resolved_data_dir = _absolute(from_env, base, f"${ENV_DATA_DIR}")
    elif file_data_dir is not None:
        resolved_data_dir = Path(file_data_dir)
    else:
        resolved_data_dir = default_data_dir(env)

    # The same folder given twice would load every plugin in it twice, and the second copy would
    # be refused as a duplicate declaration: keep the first occurrence only.
    paths = list(sections["plugins"].paths)
    paths += [str(_absolute(p, base, "--plugins")) for p in extra_plugin_paths]
    unique = tuple(dict.fromkeys(paths))
    sections["plugins"] = dataclasses.replace(sections["plugins"], paths=unique)

    return Settings(**sections, plugin_options=plugin_options, data_dir=resolved_data_dir, source=source)


# --------------------------------------------------------------------------------------------------
# `config init`: the commented example. config.example.toml at the repository root is a copy of
# this text (a test keeps them equal); the text lives here so an installed package can write it.

_EXAMPLE_CONFIG = """\
# kzconsole configuration (TOML).
#
# kzconsole reads the first of these that exists:
#   1. the file given with --config FILE
#   2. the file named by $KZCONSOLE_CONFIG
#   3. kzconsole.toml in the current directory
#   4. $XDG_CONFIG_HOME/kzconsole/config.toml (by default ~/.config/kzconsole/config.toml)
# and uses the built-in defaults when there is none.
#
# Every key is optional: a key left out keeps its default. The values shown are the defaults.
# Keys whose default depends on the machine are commented out: remove the "# " to set them.
# A misspelt key or a value of the wrong type is an error naming the key and this file.
#
# Relative paths in this file are relative to the folder that holds this file, and "~" is
# your home directory.

# Where the default SQLite store and the jobs' input and output files live.
# --data-dir and $KZCONSOLE_DATA_DIR take precedence over this key.
# Default: $XDG_DATA_HOME/kzconsole (by default ~/.local/share/kzconsole).
# data_dir = "~/.local/share/kzconsole"

[tasks]
# Milliseconds to pause after each row (or each call of a task without input), so that a long
# job does not flood what it talks to; 0 means no pause. A job can override it when it is
# created (tasks add --wait-ms) and while it runs (tasks set ID --wait-ms, or the console).
wait_after_row_ms = 500

# How many rows are processed between two saves of a job's counts (at least 1). Counts are
# also saved at least once a second, and the console shows progress live whatever this is.
send_progress_after_processed = 1000

# How many jobs run at once (at least 1); the others wait as "pending", in start order.
max_running = 4

# Where a job's output goes (as task_out.<job id>.csv) when its normal location cannot be
# written. Default: the system's temporary directory.
# output_fallback_dir = "/tmp"

[plugins]
# Folders of plugin files: every *.py file in them whose name does not start with "_" is loaded.
# Each --plugins DIR on the command line adds one more.
paths = []

# Watch those folders and reload a plugin file within half a second of a change.
reload = true

# When kzconsole runs as root, refuse plugin files and folders that another user owns or that
# group or others can write (like sshd's StrictModes): loading a plugin runs its code as root.
strict_permissions = true

[store]
# Where jobs, their input and output, and the trigger history are kept: a SQLite file,
# sqlite:////absolute/path.db (four slashes) or sqlite:///relative.db (relative to the folder of
# this file; ~ is the home folder). Default: sqlite:///<data dir>/kzconsole.db.
# url = "sqlite:////var/lib/kzconsole/kzconsole.db"

[engine]
# This node's name in a cluster of nodes sharing one store (contract 9): what a job record's
# `node` and `kzconsole nodes` show. `--node NAME` overrides it. Default: the host name.
# node = "kazoo-1"

[accounts]
# The account a job belongs to, and the account whose credentials created it, used when a
# job is created without --account / --auth-account (32 lowercase hex characters each).
account_id = "00000000000000000000000000000000"
auth_account_id = "00000000000000000000000000000000"

[triggers]
# Run the cron triggers (minutely, hourly, daily) and the database passes in the engine.
enabled = true

# Seconds from the end of one database pass to the start of the next (at least 1); the first
# pass comes this long after the engine starts. `kzconsole triggers run databases` starts one now.
browse_dbs_interval_s = 86400

# Days of trigger firing history to keep (at least 1).
history_days = 30

[databases]
# Where the databases visited by a database pass come from:
#   "directory": each file ending in .db under `path`, named by its path relative to that
#                folder without the .db suffix (account/ab/cd/0123456789abcdef0123456789ab-202611)
#   "list":      the names in `names`
source = "directory"

# The folder for source = "directory". Default: <data dir>/databases.
# path = "/srv/kzconsole/databases"

# The database names for source = "list".
names = []

[console]
# How many times a second the console redraws live progress (1 to 60).
refresh_hz = 5

[api]
# `kzconsole serve`: the REST API, compatible with Kazoo's tasks API (docs/api.md).
# Where it listens, as HOST:PORT (`serve --listen` takes precedence). Put it behind a reverse
# proxy (or set tls_cert and tls_key) before you listen on anything but the loopback.
listen = "127.0.0.1:8000"

# Jobs per page of a listing when the request gives no page_size (1 to 10000).
page_size = 50

# Seconds an auth token from PUT /v2/api_auth stays valid (at least 1).
token_ttl_s = 3600

# Largest request body accepted, in bytes (an input CSV or JSON); larger ones get 413.
max_upload_bytes = 104857600

# TLS: a PEM certificate (chain) and its private key; both or neither. Default: plain HTTP.
# tls_cert = "/etc/kzconsole/cert.pem"
# tls_key = "/etc/kzconsole/key.pem"

# Origins whose web pages may call the API (CORS), such as "https://monster.example.com";
# "*" allows any origin (the API authenticates with X-Auth-Token, never with cookies).
cors_origins = ["*"]

# Megabytes of listing pages kept in memory, answered again until the store records a change
# (any job created, changed or removed, by any process); 0 turns it off. Used with a SQLite
# store only, whose changes feed is in commit order (docs/api.md).
page_cache_mb = 16

# Megabytes of jobs kept in memory as a listing page shows them, each until the store records a
# change of that job: a page read after a change then reads only its keys and the changed jobs.
# 0 turns it off. SQLite stores only, as page_cache_mb.
job_cache_mb = 16

# Plugins' own settings, one table per plugin, read and checked by the plugin itself. This is
# the only place where kzconsole accepts keys it does not know.
# [plugin_options.my_plugin]
# greeting = "hello"
"""


def example_config_text() -> str:
    """The commented example configuration (the text of ``config.example.toml``)."""
    return _EXAMPLE_CONFIG


def write_example_config(path: str | os.PathLike[str] | None = None) -> Path:
    """``kzconsole config init [PATH]``: write the example config and return where it went.

    ``PATH`` defaults to ``./kzconsole.toml``; an existing folder gets a ``kzconsole.toml`` inside.
    Missing parent folders are created. An existing file is never overwritten (ConfigError).
    """
    target = Path(path).expanduser() if path is not None else Path(CONFIG_FILE_NAME)
    if target.is_dir():
        target = target / CONFIG_FILE_NAME
    target = target.resolve()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # "x" creates the file only if it does not exist, in one step: no check-then-write race.
        with open(target, "x", encoding="utf-8", newline="\n") as handle:
            handle.write(_EXAMPLE_CONFIG)
    except FileExistsError:
        raise ConfigError(f"{target}: already exists; not overwriting it", path=target) from None
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write: {exc.strerror or exc}", path=target) from None
    return target
