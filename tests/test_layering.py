"""Every import points down: the lower packages never import the task-facing ones above them.

Imports are read from the source with ``ast`` (module level, inside functions and under
``TYPE_CHECKING`` alike, relative ones resolved), so a lazy import that runs upward fails here too.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import airflow_provider_kling

PACKAGE = "airflow_provider_kling"
ROOT = Path(airflow_provider_kling.__file__).parent

# Package -> the packages it must never import. The rule is the first five rows (nothing
# below the operators and the sensor reaches up into them); the others keep today's arrows as they
# are: the protocol core stays below everything, the lifecycle helpers below the trigger, and the
# extra links (loaded by the api-server without the operator modules) below the operators. The UI
# plugin (plugins/) is the top: it reads what the tasks write, nothing that runs a task imports it.
TASK_FACING = frozenset({"operators", "sensors"})
FORBIDDEN: dict[str, frozenset[str]] = {
    "protocol": TASK_FACING | {"hooks", "models", "lifecycle", "triggers", "links", "plugins", "webhooks"},
    "hooks": TASK_FACING | {"lifecycle", "triggers", "links", "plugins"},
    "models": TASK_FACING | {"hooks", "lifecycle", "triggers", "links", "plugins"},
    "lifecycle": TASK_FACING | {"triggers", "links", "plugins"},
    "triggers": TASK_FACING | {"links", "plugins"},
    "links": TASK_FACING | {"triggers", "plugins"},
    "operators": frozenset({"plugins"}),
    "sensors": frozenset({"plugins"}),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, list[str]]]:
    """``(line, modules)`` for every import in ``path``, wherever it stands in the file."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, list[str]]] = []
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in sorted(ast.walk(tree), key=lambda node: getattr(node, "lineno", 0)):
        if isinstance(node, ast.Import):
            found.append((node.lineno, [alias.name for alias in node.names]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            # ``from airflow_provider_kling import operators`` names the package in the alias.
            found.append((node.lineno, [module, *(f"{module}.{alias.name}" for alias in node.names)]))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, [node.args[0].value]))
    return found


def _top_package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == PACKAGE else None


def upward_imports(layer: str) -> list[str]:
    problems = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for line, modules in imported_modules(path):
            upward = [module for module in modules if _top_package(module) in FORBIDDEN[layer]]
            if upward:
                problems.append(f"{path.relative_to(ROOT.parent)}:{line} imports {upward[-1]}")
    return problems


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_imports_point_down(layer: str) -> None:
    assert (ROOT / layer).is_dir()
    assert upward_imports(layer) == []


def test_the_check_sees_every_kind_of_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake package laid out like the real one: each upward import must be caught.
    fake = tmp_path / PACKAGE
    (fake / "triggers").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "triggers" / "__init__.py").write_text("")
    (fake / "triggers" / "kling.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from airflow_provider_kling.operators.kling import KlingVideoOperator\n"
        "def f():\n"
        "    import airflow_provider_kling.sensors.kling\n"
        "    from airflow_provider_kling import operators\n"
        "    from ..operators import _completion\n"
        "    importlib.import_module('airflow_provider_kling.sensors.kling')\n"
        "from airflow_provider_kling.lifecycle import outcome\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake)
    found = upward_imports("triggers")
    assert [entry.split(" imports ")[0].rsplit(":", 1)[1] for entry in found] == ["3", "5", "6", "7", "8"]


def _operator_modules_importing(target: str, *, allowed: set[str]) -> list[str]:
    """``name:line`` for each import of ``operators.<target>`` (or a name in it) outside ``allowed``."""
    module = f"{PACKAGE}.operators.{target}"
    return [
        f"{path.name}:{line}"
        for path in sorted((ROOT / "operators").glob("*.py"))
        if path.name not in allowed
        for line, modules in imported_modules(path)
        if any(name == module or name.startswith(f"{module}.") for name in modules)
    ]


def test_operator_modules_do_not_import_the_re_exporting_module() -> None:
    # operators/kling.py only re-exports the generic (_video) and typed (_typed) operators: a module
    # of the package importing it back would bring the old import cycle back.
    assert _operator_modules_importing("kling", allowed={"kling.py"}) == []
    body = ast.parse((ROOT / "operators" / "kling.py").read_text()).body
    kinds = {type(node).__name__ for node in body[1:]}  # after the docstring
    assert kinds == {"ImportFrom", "Assign"}, kinds  # imports and __all__, nothing defined


def test_the_generic_operator_does_not_import_the_typed_ones() -> None:
    # The typed operators subclass KlingVideoOperator, so _typed imports _video; the arrow back (even
    # a lazy or TYPE_CHECKING one) would be the old kling <-> _typed cycle under new names.
    assert _operator_modules_importing("_typed", allowed={"kling.py", "_typed.py"}) == []
    # ...and the generic operator's helpers (_webhook, _download...) never import it back either.
    importers = {entry.split(":")[0] for entry in _operator_modules_importing("_video", allowed={"kling.py"})}
    assert importers == {"_typed.py"}
