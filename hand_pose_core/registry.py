"""Name -> object registries filled by decorators in modules imported on first need.

The networks (:mod:`hand_pose_core.models.registry`), the estimator's lifters
(:mod:`hand_pose_core.pipeline.lifters`), the training tasks and the dataset readers
(:mod:`training.tasks`, :mod:`training.datasets`) are all looked up by name like this::

    _MODELS = Registry("model", ("pkg.family_a", "pkg.family_b"))

    @_MODELS.register("a")          # in pkg.family_a
    def build_a(**cfg): ...

    _MODELS.lookup("a")             # imports the modules, then returns build_a

``modules`` is either a tuple of modules whose import registers entries (all imported together
on the first lookup of a name not registered yet, or by :meth:`Registry.names`) or a dict
``{name: module}`` (only the module of the name looked up is imported, and the names are known
without importing anything). A module of the tuple that does not exist is passed over (a family
not written yet); a module that exists but misses one of its own imports raises, so that a
broken install is not mistaken for an unknown name. A module of the dict must exist.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Callable


class Registry:
    """Objects of one ``kind`` ("model", "lifter", ...) registered under unique names."""

    def __init__(self, kind: str, modules: tuple[str, ...] | Mapping[str, str] = ()):
        self.kind = kind
        self.modules = modules
        self._entries: dict[str, Any] = {}
        self._loaded = False  # the tuple of modules has been imported (or there is none)

    def register(self, name: str) -> Callable[[Any], Any]:
        """Decorator: register the decorated object under ``name``; refuses a second object
        under a name already taken (registering the same object again is harmless)."""

        def deco(obj):
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return deco

    def get(self, name: str) -> Any | None:
        """The object registered as ``name`` (importing the modules that may register it), or
        None."""
        if name not in self._entries:
            self._load(name)
        return self._entries.get(name)

    def lookup(self, name: str) -> Any:
        """Like :meth:`get`, but an unknown name raises ValueError naming the known ones."""
        obj = self.get(name)
        if obj is None:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or 'none'}")
        return obj

    def names(self) -> list[str]:
        """The names that :meth:`lookup` accepts, sorted."""
        if isinstance(self.modules, Mapping):
            return sorted(set(self._entries) | set(self.modules))
        self._load(None)
        return sorted(self._entries)

    def _load(self, name: str | None) -> None:
        if isinstance(self.modules, Mapping):
            if name in self.modules:
                importlib.import_module(self.modules[name])  # declared, so it must exist
            return
        if self._loaded:
            return
        for mod in self.modules:
            _import_if_present(mod)
        self._loaded = True


def _import_if_present(mod: str) -> None:
    try:
        importlib.import_module(mod)
    except ModuleNotFoundError as err:
        # a module not written yet; anything else missing is a real error
        if err.name != mod:
            raise


__all__ = ["Registry"]
