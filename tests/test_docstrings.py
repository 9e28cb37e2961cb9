"""The API reference is built from the docstrings (docs/api.md, mkdocstrings, Google style): every docstring example
runs (doctest, on every module of the package), and every public object — what `landscape.__all__` exports and
what docs/api.md renders — has a summary, `Args:` for its parameters, `Returns:` (or `Yields:`) for a value, and a
runnable `>>>` example."""

from __future__ import annotations

import ast
import doctest
import functools
import importlib
import inspect
import pkgutil
import re
import textwrap
from pathlib import Path

import pytest

import landscape

API_MD = Path(__file__).resolve().parents[1] / "docs" / "api.md"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
# Optional extras (pyproject.toml): a module whose import needs one of these is skipped when it is not installed.
OPTIONAL = {"psycopg", "jupyterlab", "loss_landscapes", "pyhessian", "mkdocs", "mkdocstrings", "griffe"}


# ------------------------------------------------------------------------------------------------- doctests


def _modules() -> list[str]:
    """Every module of the package (`__main__` modules are scripts: importing one must not run it, and it has no
    API to test)."""
    broken: list[str] = []  # packages whose import failed: their test imports them again and reports why
    names = [m.name for m in pkgutil.walk_packages(landscape.__path__, "landscape.", onerror=broken.append)]
    return ["landscape", *sorted({n for n in names + broken if n.rsplit(".", 1)[-1] != "__main__"})]


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] in OPTIONAL:
            pytest.skip(f"{name} needs the optional package {e.name} (an extra of pyproject.toml), not installed")
        raise


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name):
    results = doctest.testmod(_import(name), optionflags=FLAGS, report=False)  # failures: in the captured stdout
    assert results.failed == 0, f"{name}: {results.failed} of {results.attempted} doctest examples failed"


# ---------------------------------------------------------------------------------------- the public objects


def api_entries(text: str | None = None) -> list[tuple[str, list[str] | bool | None]]:
    """(dotted path, members) of every `::: path` block of docs/api.md: members is the `options: members:` list,
    False for `members: false`, None where the block names none (mkdocstrings then renders all public members)."""
    text = API_MD.read_text() if text is None else text
    entries, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^:::\s+(\S+)\s*$", line)
        if not m:
            continue
        block = []
        for follow in lines[i + 1:]:
            if follow.strip() and not follow.startswith(" "):
                break
            block.append(follow)
        members: list[str] | bool | None = None
        for j, option in enumerate(block):
            key = re.match(r"^(\s*)members:\s*(\S*)\s*$", option)
            if not key:
                continue
            if key.group(2):  # members: false / true
                members = None if key.group(2).lower() in ("true", "yes") else False
            else:  # members: followed by "- name" lines
                members = []
                for item in block[j + 1:]:
                    listed = re.match(r"^\s*-\s*(\S+)\s*$", item)
                    if not listed:
                        break
                    members.append(listed.group(1))
            break
        entries.append((m.group(1), members))
    return entries


def resolve(path: str):
    """The object a dotted path names: the longest importable module prefix, then attributes."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


def _own_members(cls: type) -> dict[str, object]:
    """The public methods and properties a class defines itself (mkdocstrings renders these, not inherited ones)."""
    out = {}
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if inspect.isfunction(value) or isinstance(value, property):
            out[f"{cls.__module__}.{cls.__qualname__}.{name}"] = value
    return out


def _module_members(module) -> dict[str, object]:
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    out = {}
    for name in names:
        value = getattr(module, name)
        if (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__ == module.__name__:
            out[f"{module.__name__}.{name}"] = value
    return out


def _expand(qualname: str, obj) -> dict[str, object]:
    out = {qualname: obj}
    if inspect.isclass(obj):
        out.update(_own_members(obj))
    return out


@functools.cache
def public_objects() -> dict[str, object]:
    """Qualified name → object of every public function, class, method and property: `landscape.__all__`, and
    docs/api.md's `:::` entries with their members."""
    objects: dict[str, object] = {}
    for name in landscape.__all__:
        value = getattr(landscape, name)
        if inspect.isfunction(value) or inspect.isclass(value):
            objects.update(_expand(f"{value.__module__}.{value.__qualname__}", value))
    for path, members in api_entries():
        obj = resolve(path)
        if inspect.ismodule(obj):
            if members is False:
                continue
            found = ({f"{path}.{m}": getattr(obj, m) for m in members} if members is not None
                     else _module_members(obj))
            for qualname, value in found.items():
                objects.update(_expand(qualname, value))
        else:
            objects.update(_expand(path, obj))
    return objects


def _function(obj):
    return obj.fget if isinstance(obj, property) else obj


def _parameters(obj) -> list[str]:
    """The parameters a caller passes (not self/cls); a class's are its __init__'s."""
    target = obj.__init__ if inspect.isclass(obj) else _function(obj)
    if target is object.__init__:
        return []
    try:
        params = list(inspect.signature(target).parameters)
    except (TypeError, ValueError):
        return []
    return [p for p in params if p not in ("self", "cls")]


def _returns_value(func) -> bool:
    """Whether the function returns something: by its annotation, else by a `return <value>` in its own body."""
    annotation = inspect.signature(func).return_annotation
    if annotation is not inspect.Signature.empty:
        return annotation not in (None, "None")
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return True
    body = tree.body[0]
    stack = list(ast.iter_child_nodes(body))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Return) and node.value is not None:
            return True
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return True
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))
    return False


def _section(doc: str, *names: str) -> bool:
    return any(re.search(rf"^\s*{name}:\s*$", doc, re.M) for name in names)


def problems(obj) -> list[str]:
    """What the docstring of one public object lacks (empty: nothing)."""
    doc = inspect.getdoc(_function(obj)) or ""
    if not doc.strip() or not doc.strip().splitlines()[0].strip():
        return ["no docstring (a one-line summary first)"]
    out = []
    abstract = getattr(_function(obj), "__isabstractmethod__", False)
    if inspect.isclass(obj):
        init = inspect.getdoc(obj.__init__) if "__init__" in vars(obj) else None
        dataclass_init = hasattr(obj, "__dataclass_fields__")
        if _parameters(obj) and not dataclass_init and not _section(doc + "\n" + (init or ""), "Args"):
            out.append("no Args: section for its constructor's parameters")
    elif not isinstance(obj, property):
        if _parameters(obj) and not _section(doc, "Args"):
            out.append("no Args: section")
        if _parameters(obj) and _returns_value(obj) and not _section(doc, "Returns", "Yields"):
            out.append("no Returns: (or Yields:) section")
    if ">>>" not in doc and not abstract:
        out.append("no >>> example")
    return out


def test_the_public_objects_are_found():
    objects = public_objects()
    assert "landscape.api.compress_model" in objects and "landscape.store.Run" in objects
    assert "landscape.specs.RunSpec.at" in objects and "landscape.analysis.engine.run_analysis" in objects


def test_the_docs_entries_are_parsed():
    text = "# X\n\n::: a.b\n    options:\n      members:\n        - f\n        - g\n\n::: c\n    options:\n" \
           "      members: false\n\n::: d.E\n"
    assert api_entries(text) == [("a.b", ["f", "g"]), ("c", False), ("d.E", None)]


@pytest.mark.parametrize("qualname", sorted(public_objects()))
def test_public_docstrings_are_complete(qualname):
    missing = problems(public_objects()[qualname])
    assert not missing, f"{qualname}: " + "; ".join(missing)


def test_an_incomplete_docstring_fails():
    def documented(x: int) -> int:
        """Twice `x`.

        Args:
            x: a number.

        Returns:
            2 x.

        >>> documented(2)
        4
        """
        return 2 * x

    def bare(x: int) -> int:
        """Twice `x`."""
        return 2 * x

    assert problems(documented) == []
    assert problems(bare) == ["no Args: section", "no Returns: (or Yields:) section", "no >>> example"]
