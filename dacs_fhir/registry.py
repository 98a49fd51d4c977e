"""One registry shape for mappers, listeners, rules and notifiers.

Built-ins register on import with :meth:`Registry.register`; third parties add
theirs through the ``setup.cfg`` entry-point group of the same name
(``dacs_fhir.mappers``, ``dacs_fhir.listeners``, ``dacs_fhir.rules``,
``dacs_fhir.notifiers``), loaded once on first lookup.
"""
from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Callable, Generic, Iterator, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Registry(Generic[T]):
    """Named plugins of one kind."""

    def __init__(self, group: str):
        self.group = group
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register ``obj`` under ``name`` (a later registration replaces an earlier one)."""

        def deco(obj: T) -> T:
            self._items[name] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        self._items[name] = obj

    def remove(self, name: str) -> None:
        """Unregister ``name`` (a test's plugin, once the test is over); no error when it is not there."""
        self._items.pop(name, None)

    def _load_entry_points(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for ep in entry_points(group=self.group):
            if ep.name in self._items:
                continue
            try:
                self._items[ep.name] = ep.load()
            except Exception:  # a broken plugin must not take the server down
                log.exception("plugin %s of %s failed to load", ep.name, self.group)

    def get(self, name: str) -> T:
        self._load_entry_points()
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"no {self.group} plugin named {name!r}") from None

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def __iter__(self) -> Iterator[tuple[str, T]]:
        self._load_entry_points()
        return iter(list(self._items.items()))


mappers: Registry = Registry("dacs_fhir.mappers")
listeners: Registry = Registry("dacs_fhir.listeners")
rules: Registry = Registry("dacs_fhir.rules")
notifiers: Registry = Registry("dacs_fhir.notifiers")
