"""The shape of the code, as docs/architecture.md draws it, checked: who may import whom, no
cycle between packages, each domain's files. The rules are functions of an import graph, so
the tests of the tests below can hand them a broken graph and see them fail."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).parents[1] / "src" / "citydata"
DOCS = Path(__file__).parents[1] / "docs" / "architecture.md"

# Below every domain: they import only each other (and the package's own __init__).
TOOLKITS = {
    "db",
    "web",
    "mechanisms",
    "standards",
    "config",
    "keys",
    "cells",
    "cli_common",
    "clock",
}
# Above every domain: they wire the domains together; no domain imports them.
COMPOSITION = {"app", "cli", "migrations", "__main__"}
# Modules that speak HTTP: the only ones in a domain that may import citydata.web.
HTTP = re.compile(r"(^|_)(api|pages)$|^http$|^dcat$|^routes$")

# Each domain's files (beyond __init__.py), as docs/architecture.md lists them.
DOMAIN_FILES = {
    "accounts": {"models", "service", "permissions", "cli", "pages"},
    "audit": {"models", "service", "http"},
    "bases": {"models", "service", "permissions", "api", "pages", "cli", "spec", "tables"},
    "brain": {"models", "service", "permissions", "pages", "cli", "spec", "summaries", "queries"},
    "catalog": {"models", "service", "permissions", "api", "pages", "cli", "vocab", "schema"},
    "demo": {"generate", "cli"},
    "ingest": {"models", "service", "permissions", "api", "pages", "cli", "readers", "staging"},
    "match": {"service", "cli"},
    "opendata": {"models", "service", "permissions", "api", "pages", "sql", "sqlguard"},
    "privacy": {"masking"},
    "share": {"models", "service", "permissions", "api", "pages", "cli", "gateway"},
    "services": {"models", "service", "permissions", "api", "pages", "cli", "cases", "matters"},
    "grid": {"models", "service", "permissions", "api", "pages", "cli", "events", "sla"},
    "ops": {"service", "cli", "api", "backup", "jobs", "metrics"},
}


def modules() -> dict[str, Path]:
    """citydata.x.y -> file, for every module."""
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def package(module: str) -> str:
    """The top-level package (or module) of citydata a module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "citydata"


def import_graph() -> dict[str, set[str]]:
    """module -> the citydata modules it imports (anywhere in the file, functions included)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
            else:
                continue
            graph[name] |= {t for t in targets if t == "citydata" or t.startswith("citydata.")}
    return graph


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for source, targets in graph.items():
        for target in targets:
            a, b = package(source), package(target)
            if a != b and b != "citydata":
                edges[a].add(b)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each package cycle once, as a path (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every broken import rule of ``graph``, in words."""
    problems = []
    for source, targets in sorted(graph.items()):
        home = package(source)
        for target in sorted(targets):
            there = package(target)
            if there == home or there == "citydata":
                continue
            if there in COMPOSITION and home not in COMPOSITION:
                problems.append(f"{source} imports {target}: only the composition root may")
            if home in TOOLKITS and there not in TOOLKITS:
                problems.append(f"{source} imports {target}: {home}/ is below every domain")
            if (
                there == "web"
                and home not in TOOLKITS | COMPOSITION
                and not HTTP.search(source.rsplit(".", 1)[-1])
            ):
                problems.append(f"{source} imports {target}: logic never imports the web toolkit")
    for cycle in cycles(package_graph(graph)):
        problems.append(f"packages import each other in a cycle: {' ↔ '.join(cycle)}")
    return problems


# ---------------------------------------------------------------- the rules hold


def test_imports_follow_the_layers():
    assert violations(import_graph()) == []


def test_each_domain_has_its_files():
    for domain, files in DOMAIN_FILES.items():
        folder = ROOT / domain
        have = {p.stem for p in folder.glob("*.py")} | {
            p.name for p in folder.iterdir() if p.is_dir() and (p / "__init__.py").exists()
        }
        assert files <= have, (domain, sorted(files - have))


def test_http_and_cli_are_shells_over_a_service():
    for folder in ROOT.iterdir():
        names = {p.stem for p in folder.glob("*.py")} if folder.is_dir() else set()
        if {"api", "pages", "cli"} & names and folder.name not in COMPOSITION | {"demo", "match"}:
            assert "service" in names, f"{folder.name}/ has HTTP or CLI but no service.py"


def test_pages_render_templates_of_their_own_folder():
    shared = {p.name for p in (ROOT / "web" / "templates").glob("*.html")}
    for pages in ROOT.glob("*/pages.py"):
        own = {p.name for p in (pages.parent / "templates").glob("*.html")}
        used = set(re.findall(r'"([a-z_]+\.html)"', pages.read_text(encoding="utf-8")))
        assert used and used <= own, (pages.parent.name, sorted(used - own))
        assert not own & shared, pages.parent.name
    assert shared == {"base.html"}


def test_the_architecture_document_names_every_package():
    text = DOCS.read_text(encoding="utf-8")
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    missing = [p for p in sorted(packages) if f"`{p}/`" not in text]
    assert missing == [], f"docs/architecture.md does not describe {missing}"


# ---------------------------------------------------------------- the rules would catch a break


def broken(source: str, target: str) -> dict[str, set[str]]:
    graph = {k: set(v) for k, v in import_graph().items()}
    graph.setdefault(source, set()).add(target)
    return graph


def test_a_domain_importing_the_app_is_caught():
    found = violations(broken("citydata.share.gateway", "citydata.app"))
    assert any("only the composition root" in p for p in found)


def test_the_web_toolkit_importing_a_domain_is_caught():
    found = violations(broken("citydata.web.render", "citydata.catalog.vocab"))
    assert any("below every domain" in p for p in found)


def test_logic_importing_the_web_toolkit_is_caught():
    found = violations(broken("citydata.share.gateway", "citydata.web.client"))
    assert any("logic never imports" in p for p in found)
    assert violations(broken("citydata.share.api", "citydata.web.client")) == []


def test_a_cycle_between_packages_is_caught():
    found = violations(broken("citydata.catalog.service", "citydata.share.service"))
    assert any("cycle" in p and "catalog" in p and "share" in p for p in found)
