"""The generic name registry behind models, lifters, training tasks and datasets."""
from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from hand_pose_core.registry import Registry


@pytest.fixture
def pkg(tmp_path, monkeypatch):
    """A throw-away package on sys.path whose modules register into its ``REG``.

    Returns (package, write(module, source) -> dotted module name); the test sets
    ``package.REG`` to the registry under test before anything imports the modules.
    """
    name = f"regpkg_{tmp_path.name.replace('-', '_')}"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("REG = None\ncount = 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    package = importlib.import_module(name)

    def write(module: str, source: str) -> str:
        (root / f"{module}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        return f"{name}.{module}"

    yield package, write
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[mod]


def test_register_and_lookup():
    reg = Registry("widget")

    @reg.register("a")
    def build_a():
        return "A"

    assert reg.lookup("a") is build_a
    assert reg.get("a") is build_a
    assert reg.get("b") is None
    assert reg.names() == ["a"]


def test_duplicate_name_refused_same_object_allowed():
    reg = Registry("widget")

    class A:
        pass

    class B:
        pass

    reg.register("a")(A)
    reg.register("a")(A)  # the same object again (e.g. a module imported twice): harmless
    with pytest.raises(ValueError, match=r"widget 'a' is registered twice"):
        reg.register("a")(B)
    assert reg.lookup("a") is A


def test_unknown_name_lists_the_known_ones():
    reg = Registry("widget")
    with pytest.raises(ValueError, match=r"unknown widget 'x'; known: none"):
        reg.lookup("x")
    reg.register("b")(object())
    reg.register("a")(object())
    with pytest.raises(ValueError, match=r"unknown widget 'x'; known: a, b$"):
        reg.lookup("x")
    assert reg.names() == ["a", "b"]


def test_modules_imported_only_on_first_need(pkg):
    package, write = pkg
    # the family module counts its imports and registers one object
    fam = write("fam", f"""
        import {package.__name__} as p
        p.count += 1
        p.REG.register("fam_a")(lambda: "fam_a")
        """)
    reg = package.REG = Registry("widget", (fam, f"{package.__name__}.not_written_yet"))
    reg.register("local")(object())
    reg.lookup("local")  # registered already: nothing to import
    assert fam not in sys.modules
    assert reg.lookup("fam_a")() == "fam_a"  # the first miss imports the modules
    assert package.count == 1
    with pytest.raises(ValueError, match=r"unknown widget 'nope'; known: fam_a, local$"):
        reg.lookup("nope")
    assert reg.names() == ["fam_a", "local"]
    assert package.count == 1  # imported once


def test_names_imports_the_modules(pkg):
    package, write = pkg
    fam = write("fam", f"import {package.__name__} as p\np.REG.register('x')(1)\n")
    reg = package.REG = Registry("widget", (fam,))
    assert fam not in sys.modules
    assert reg.names() == ["x"]
    assert fam in sys.modules


def test_module_missing_its_own_import_is_raised(pkg):
    package, write = pkg
    broken = write("broken", "import hand_pose_no_such_dependency_xyz\n")
    reg = Registry("widget", (f"{package.__name__}.not_written_yet", broken))
    with pytest.raises(ModuleNotFoundError) as info:
        reg.lookup("anything")
    assert info.value.name == "hand_pose_no_such_dependency_xyz"
    # not marked as loaded: the next lookup tries (and fails) again instead of saying "unknown"
    with pytest.raises(ModuleNotFoundError):
        reg.names()


def test_dict_of_modules_imports_only_the_named_one(pkg):
    package, write = pkg
    a = write("a", f"import {package.__name__} as p\np.REG.register('a')('A')\n")
    b = write("b", f"import {package.__name__} as p\np.REG.register('b')('B')\n")
    reg = package.REG = Registry("widget", {"a": a, "b": b})
    assert reg.names() == ["a", "b"]  # known without importing
    with pytest.raises(ValueError, match=r"unknown widget 'c'; known: a, b$"):
        reg.lookup("c")
    assert a not in sys.modules and b not in sys.modules
    assert reg.lookup("a") == "A"
    assert a in sys.modules and b not in sys.modules


def test_dict_module_missing_its_own_import_is_raised(pkg):
    package, write = pkg
    broken = write("broken", "import hand_pose_no_such_dependency_xyz\n")
    reg = Registry("widget", {"broken": broken})
    with pytest.raises(ModuleNotFoundError) as info:
        reg.lookup("broken")
    assert info.value.name == "hand_pose_no_such_dependency_xyz"
