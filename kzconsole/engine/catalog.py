"""The catalog: every task, verifier and trigger binding the loaded plugins declare.

Readers (the runner, the scheduler, the console, the command line) run on many threads while the
hot-reload thread swaps plugin versions. So the catalog keeps one immutable snapshot and a change
builds a new one and swaps it in with a single assignment: a reader that grabbed a task, a
verifier table or a trigger list keeps a consistent view, never half of an old plugin and half of a
new one (contract 6). Writers are serialised by a lock; readers take none.

The unit of change is a :class:`PluginSource` (one file, one built-in module, one entry-point
module): the loader stages a whole source, then installs it in one call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from kzconsole.plugin import TaskSpec, TriggerSpec, VerifierSpec

__all__ = ["PluginSource", "Catalog", "SOURCE_KINDS"]

log = logging.getLogger("kzconsole.plugins")

SOURCE_KINDS = ("builtin", "file", "entry_point")


@dataclass(frozen=True)
class PluginSource:
    """One plugin module as the catalog knows it: what it declares and how its last load went.

    When a reload of a loaded source fails, the source stays ``loaded=True`` with its OLD
    declarations and ``error`` holds the new traceback: the old version keeps serving and the
    operator sees why the new one did not replace it.
    """

    source: str  # absolute file path, or module name (builtin / entry point)
    kind: str  # "builtin" | "file" | "entry_point"
    loaded: bool
    loaded_at: float | None
    tasks: tuple[TaskSpec, ...] = ()
    verifiers: tuple[VerifierSpec, ...] = ()
    triggers: tuple[TriggerSpec, ...] = ()
    error: str | None = None  # traceback text of the last failed load (None if it worked)

    def public(self) -> dict[str, Any]:
        """The ``kzconsole plugins --json`` entry (contract 7)."""
        return {
            "source": self.source,
            "loaded": self.loaded,
            "loaded_at": self.loaded_at,
            "tasks": [spec.name for spec in self.tasks],
            "verifiers": [spec.name for spec in self.verifiers],
            "triggers": [f"{spec.trigger}:{spec.function_name}" for spec in self.triggers],
            "error": self.error,
        }


@dataclass(frozen=True)
class _Snapshot:
    """Everything a reader needs, derived once per change; never mutated after it is built."""

    version: int = 0
    sources: tuple[PluginSource, ...] = ()
    tasks: Mapping[tuple[str, str], TaskSpec] = field(default_factory=lambda: MappingProxyType({}))
    sorted_tasks: tuple[TaskSpec, ...] = ()
    verifiers: Mapping[str, Mapping[str, Callable[[str], Any]]] = field(default_factory=lambda: MappingProxyType({}))
    triggers: Mapping[str, tuple[TriggerSpec, ...]] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def build(cls, version: int, sources: tuple[PluginSource, ...]) -> _Snapshot:
        tasks: dict[tuple[str, str], TaskSpec] = {}
        verifiers: dict[str, dict[str, Callable[[str], Any]]] = {}
        triggers: dict[str, list[TriggerSpec]] = {}
        for src in sources:
            if not src.loaded:
                continue
            # The loader refuses a source that conflicts with a loaded one, so a clash only
            # happens when install() is called directly; then the earlier source wins, as the
            # contract says of files ("the first one keeps serving").
            for spec in src.tasks:
                tasks.setdefault((spec.category, spec.action), spec)
            for vspec in src.verifiers:
                verifiers.setdefault(vspec.category, {}).setdefault(vspec.field, vspec.function)
            for tspec in src.triggers:
                triggers.setdefault(tspec.trigger, []).append(tspec)
        return cls(
            version=version,
            sources=sources,
            tasks=MappingProxyType(tasks),
            sorted_tasks=tuple(sorted(tasks.values(), key=lambda s: (s.category, s.action))),
            verifiers=MappingProxyType({cat: MappingProxyType(table) for cat, table in verifiers.items()}),
            triggers=MappingProxyType({name: tuple(specs) for name, specs in triggers.items()}),
        )


class Catalog:
    """Thread-safe registry; readers see an immutable snapshot; changes swap it at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot = _Snapshot()
        # Copy-on-write tuple: notifying iterates a stable sequence without holding a lock.
        self._subscribers: tuple[Callable[[], None], ...] = ()
        self._subscribers_lock = threading.Lock()

    # --- reading (lock-free: one attribute read gives a consistent snapshot) -------------------

    @property
    def version(self) -> int:
        """Increments on every change (install or remove)."""
        return self._snapshot.version

    def task(self, category: str, action: str) -> TaskSpec | None:
        return self._snapshot.tasks.get((category, action))

    def tasks(self) -> list[TaskSpec]:
        """Every task, sorted by category, then action."""
        return list(self._snapshot.sorted_tasks)

    def verifiers(self, category: str) -> dict[str, Callable[[str], Any]]:
        """The verifiers of a category: column name -> function (a copy the caller may keep)."""
        return dict(self._snapshot.verifiers.get(category, {}))

    def triggers(self, name: str) -> list[TriggerSpec]:
        """The functions bound to a trigger, in load order (source load order, then declaration
        order). ``all_dbs`` is expanded at declaration, so ask for the four database triggers."""
        return list(self._snapshot.triggers.get(name, ()))

    def sources(self) -> list[PluginSource]:
        """Every known source, loaded or not, in load order."""
        return list(self._snapshot.sources)

    def source(self, source: str) -> PluginSource | None:
        """The source recorded under ``source`` (a path or module name), if any."""
        for src in self._snapshot.sources:
            if src.source == source:
                return src
        return None

    def has_category(self, category: str) -> bool:
        return any(key[0] == category for key in self._snapshot.tasks)

    def help(self, category: str | None = None, action: str | None = None) -> dict[str, Any]:
        """``tasks help --json``: ``{category: {action: spec.help()}}``, narrowed to the category
        (and action) given; ``{}`` when they are unknown, never a KeyError."""
        out: dict[str, dict[str, Any]] = {}
        for spec in self._snapshot.sorted_tasks:
            if category is not None and spec.category != category:
                continue
            if category is not None and action is not None and spec.action != action:
                continue
            out.setdefault(spec.category, {})[spec.action] = spec.help()
        return out

    def conflicts(self, candidate: PluginSource) -> list[str]:
        """Messages for each task or verifier of ``candidate`` that ANOTHER loaded source already
        declares, naming both places (file:line). Its own previous version does not count: a
        reload of the same source replaces it."""
        # One declaration per key: ("task", category, action) or ("verifier", category, field).
        declared: dict[tuple[str, str, str], tuple[TaskSpec | VerifierSpec, str]] = {}

        def keyed(src: PluginSource) -> list[tuple[tuple[str, str, str], TaskSpec | VerifierSpec]]:
            return [(("task", t.category, t.action), t) for t in src.tasks] + [
                (("verifier", v.category, v.field), v) for v in src.verifiers
            ]

        for src in self._snapshot.sources:
            if src.loaded and src.source != candidate.source:
                for key, spec in keyed(src):
                    declared.setdefault(key, (spec, src.source))
        messages = []
        for key, spec in keyed(candidate):
            if key in declared:
                other, owner = declared[key]
                messages.append(
                    f"{key[0]} {spec.name} declared at {spec.where} is already declared at "
                    f"{other.where} (plugin {owner})"
                )
        return messages

    # --- changing ----------------------------------------------------------------------------

    def install(self, source: PluginSource) -> None:
        """Add a source, or replace the one with the same ``source`` string in its position (so a
        reloaded file keeps its place in the trigger order)."""
        if source.kind not in SOURCE_KINDS:
            raise ValueError(f"unknown plugin source kind {source.kind!r} for {source.source}")
        with self._lock:
            current = self._snapshot.sources
            for index, existing in enumerate(current):
                if existing.source == source.source:
                    sources = current[:index] + (source,) + current[index + 1 :]
                    break
            else:
                sources = current + (source,)
            self._snapshot = _Snapshot.build(self._snapshot.version + 1, sources)
        self._notify()

    def remove(self, source: str) -> bool:
        """Forget a source (a deleted plugin file). False when it was not there."""
        with self._lock:
            current = self._snapshot.sources
            sources = tuple(src for src in current if src.source != source)
            if len(sources) == len(current):
                return False
            self._snapshot = _Snapshot.build(self._snapshot.version + 1, sources)
        self._notify()
        return True

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` after each change (on the changing thread, after the swap; an
        exception is logged, never raised). Returns a function that unsubscribes."""
        with self._subscribers_lock:
            self._subscribers = self._subscribers + (callback,)

        def unsubscribe() -> None:
            with self._subscribers_lock:
                subs = list(self._subscribers)
                if callback in subs:
                    subs.remove(callback)
                    self._subscribers = tuple(subs)

        return unsubscribe

    def _notify(self) -> None:
        # Outside the writer lock: a subscriber may read the catalog, or even change it.
        for callback in self._subscribers:
            try:
                callback()
            except Exception:
                log.exception("a catalog subscriber (%r) failed", callback)
