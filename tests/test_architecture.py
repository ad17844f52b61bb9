"""The import direction of docs/architecture.md, read from the source with `ast`: the figures
know no Flask, nothing below the views imports a view, no layer imports a later one, the
feature packages and `web` import each other in one direction, and the app never imports
dev/."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "billing_app"

FOUNDATION = {"config", "permissions", "formats", "extensions", "models", "logs"}
FEATURES = {
    "usage",
    "tenants",
    "reports",
    "exports",
    "billing_email",
    "invoices",
    "portal",
    "importer",
    "auth",
    "webhooks",
    "api_tokens",
    "api",
    "notifications",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, set[str]]:
    """Each module of the app (migrations aside) and every module it imports, anywhere in it."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}: relative import"
                imported.add(node.module or "")
                imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[module_name(path)] = imported
    return found


MODULES = modules()


def layer(name: str) -> int:
    """0 foundation, 1 figures, 2 the features' domain, 3 web helpers, 4 views, 5 the app."""
    parts = name.split(".")[1:]
    if not parts or parts[0] == "gunicorn_conf":
        return 5
    if parts[0] in FOUNDATION or parts[0] in {"stripe_gateway"}:
        return 0
    if parts[0] == "figures":
        return 1
    if parts[-1] == "views" or parts[0] in {"health", "cli"}:
        return 4
    if parts[0] in {"web", "access", "errors", "security"}:
        return 3
    if parts[0] in FEATURES:
        return 2
    raise AssertionError(f"{name} is in no layer of docs/architecture.md")


def ours(imported: set[str]) -> set[str]:
    """The app's modules among the names imported (a name may be a module or something in it)."""
    return {name for name in imported if name in MODULES}


def test_every_module_has_a_layer():
    for name in MODULES:
        layer(name)


def test_figures_import_no_flask():
    for name, imported in MODULES.items():
        if layer(name) == 1:
            flask = {i for i in imported if i.split(".")[0].startswith("flask")}
            assert not flask, f"{name} imports {flask}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_imports_a_later_layer(name):
    later = {i for i in ours(MODULES[name]) if layer(i) > layer(name)}
    if layer(name) == 4:  # a view may import no other view (the app factory wires them)
        later |= {i for i in ours(MODULES[name]) if layer(i) == 4}
    assert not later, f"{name} (layer {layer(name)}) imports {sorted(later)}"


def test_the_feature_packages_and_web_import_each_other_in_one_direction():
    """Package by package, not only module by module: `web` (what the pages share) is
    imported by the features' views and imports no feature."""
    packages = FEATURES | {"web"}
    graph: dict[str, set[str]] = {package: set() for package in packages}
    for name, imported in MODULES.items():
        parts = name.split(".")
        if len(parts) < 2 or parts[1] not in packages:
            continue
        for other in ours(imported):
            target = other.split(".")
            if len(target) > 1 and target[1] in packages and target[1] != parts[1]:
                graph[parts[1]].add(target[1])
    assert not graph["web"] & FEATURES, f"web imports {sorted(graph['web'] & FEATURES)}"
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as cycle:
        pytest.fail(f"the packages import each other in a circle: {cycle.args[1]}")


def test_the_app_never_imports_dev_or_tests():
    for name, imported in MODULES.items():
        outside = {i for i in imported if i.split(".")[0] in {"dev", "tests"}}
        assert not outside, f"{name} imports {outside}"
