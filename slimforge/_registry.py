"""A small named-plug-in registry shared by models, datasets, losses, criteria and backends."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from slimforge.errors import UnknownNameError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to plug-ins (usually factories).

    ``kind`` names what is registered ("model", "dataset", ...) so errors read well.
    ``builtins`` maps names to the module that registers them: a built-in entry of a domain
    package (``{"neumf": "slimforge.recsys.models"}``) is listed at once but its module is imported
    on first use, so a lower package needs no import of the packages above it.
    An entry carries its metadata with it (``register("taylor", needs_gradients=True)``, read with
    :meth:`meta`), so no side table has to be kept in step with the registry.
    """

    def __init__(self, kind: str, builtins: dict[str, str] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._help: dict[str, str] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._builtins = dict(builtins or {})

    def register(self, name: str, help: str = "", **meta: Any) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("resnet20")``. Re-registering a name is an error.
        ``meta``: facts about the entry that its users read with :meth:`meta`."""

        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = entry
            self._meta[name] = dict(meta)
            doc = help or (getattr(entry, "__doc__", None) or "").strip().splitlines()
            self._help[name] = doc if isinstance(doc, str) else (doc[0] if doc else "")
            return entry

        return add

    def get(self, name: str) -> T:
        if not isinstance(name, str):  # a list or mapping read from a file is no name (and unhashable)
            raise UnknownNameError(f"A {self.kind} name must be a string, got {type(name).__name__} {name!r}. "
                                   f"Known {_plural(self.kind)}: {', '.join(self.names())}.")
        self._provide(name)
        try:
            return self._entries[name]
        except KeyError:
            names = self.names()
            raise UnknownNameError(
                f"Unknown {self.kind} {name!r}.{did_you_mean(name, names)} "
                f"Known {_plural(self.kind)}: {', '.join(names)}."
            ) from None

    def names(self) -> list[str]:
        return sorted(set(self._entries) | set(self._builtins))

    def help(self, name: str) -> str:
        self._provide(name)
        return self._help.get(name, "")

    def meta(self, name: str) -> dict[str, Any]:
        """The metadata entry ``name`` was registered with (a copy; empty if none)."""
        self.get(name)
        return dict(self._meta.get(name, {}))

    def view(self, key: str) -> Mapping[str, Any]:
        """A read-only mapping, name -> ``meta(name)[key]``, over the entries registered with ``key``
        (``EXPORTERS.view("loader")``); it follows later registrations."""
        return _MetaView(self, key)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):  # a list or mapping from a YAML file is no name (and unhashable)
            return False
        return name in self._entries or name in self._builtins

    def _provide(self, name: str) -> None:
        """Import the module of built-in entry ``name`` if it has not registered it yet."""
        if name not in self._entries and name in self._builtins:
            importlib.import_module(self._builtins[name])
            if name not in self._entries:
                raise ValueError(f"{self._builtins[name]} was expected to register {self.kind} {name!r} but did not")

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


class _MetaView(Mapping[str, Any]):
    def __init__(self, registry: Registry[Any], key: str) -> None:
        self._registry, self._key = registry, key

    def __getitem__(self, name: str) -> Any:
        try:
            return self._registry._meta[name][self._key]
        except KeyError:
            raise KeyError(name) from None

    def __iter__(self) -> Iterator[str]:
        return (name for name, meta in self._registry._meta.items() if self._key in meta)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _plural(kind: str) -> str:
    """ "model" -> "models", "loss" -> "losses", "importance criterion" -> "importance criteria"."""
    if kind.endswith("criterion"):
        return kind[: -len("criterion")] + "criteria"
    return kind + ("es" if kind.endswith(("s", "x", "sh", "ch")) else "s")
