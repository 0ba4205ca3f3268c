"""The package's shape, checked on its import graph.

The layer contracts live in .importlinter (import-linter) and run here, one test each:
- every import points down: cli | operations | bank | demo, reporting | services | store |
  domain (the order and its reasons are written in .importlinter); every top-level module of
  bankms sits in a layer (exhaustive), so a new one must be placed;
- only bankms.store imports duckdb, psycopg or adbc_driver_postgresql (the other layers reach
  them through the store);
- bankms never imports Streamlit: rules live in bankms, pages only show them.
Each contract is shown to break on a planted violation in a copy of the package.

On the graph itself (grimp, the engine of import-linter):
- Only modules under bankms.store import duckdb directly, bankms/__init__.py included; the
  exceptions, counted, may only shrink (DUCKDB_EXCEPTIONS, empty today).
- No import cycle among bankms modules, counting module-level imports and function-local ones
  alike: a local import only defers a cycle to run time, it does not remove it. A local import
  that still closes a cycle must be listed in LOCAL_CYCLE_IMPORTS with a comment at the import
  saying why; today the list is empty.
- Nothing imports bank.py, which wires the services together, but the entry points: services
  reach each other through the Bank object they are handed (see shared/design.md).

grimp reports every import with its line but not whether it runs at import time or inside a
function, so the line is looked up in the module's syntax tree (ast) for that.
"""
from __future__ import annotations

import ast
import configparser
import pathlib
import shutil
import subprocess
import sys
from functools import cache

import grimp
import pytest

PACKAGE = "bankms"
ROOT = pathlib.Path(__file__).resolve().parent.parent

CONTRACTS = ROOT / ".importlinter"

# The layer that owns duckdb, and the modules outside it that still import it (none since the
# relayout of issue 14: operations.restore copies a database through store.files). A new entry
# is a step back: give the store a function instead.
DUCKDB_LAYER = "bankms.store"
DUCKDB_EXCEPTIONS: set[str] = set()

# The entry points that may import bank.py (the Bank and open_bank): the package's public face,
# the command line, and operations.restore, which opens the restored file to check it.
BANK_IMPORTERS = {"bankms", "bankms.cli", "bankms.operations"}

# (importer, imported) pairs of function-local imports allowed to close a cycle, each with a
# comment at the import saying why. Empty since the first layering step of issue 14: a new
# entry is a step back, so prefer moving the shared code into a leaf module.
LOCAL_CYCLE_IMPORTS: set[tuple[str, str]] = set()


@cache
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE, include_external_packages=True, cache_dir=None)


def module_path(module: str) -> pathlib.Path:
    parts = module.split(".")
    folder = ROOT.joinpath(*parts)
    return folder / "__init__.py" if folder.is_dir() else folder.with_suffix(".py")


@cache
def local_import_lines(module: str) -> frozenset[int]:
    """The line numbers of the imports inside a function (or lambda) of `module`."""
    tree = ast.parse(module_path(module).read_text(encoding="utf-8"))
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            lines.update(sub.lineno for sub in ast.walk(node)
                         if isinstance(sub, (ast.Import, ast.ImportFrom)))
    return frozenset(lines)


def internal_imports() -> list[dict]:
    """Every import of one bankms module by another: importer, imported, line_number,
    line_contents and local (True when it runs inside a function)."""
    g = graph()
    found = []
    for importer in sorted(m for m in g.modules if m.split(".")[0] == PACKAGE):
        local = local_import_lines(importer)
        for imported in sorted(g.find_modules_directly_imported_by(importer)):
            if imported.split(".")[0] != PACKAGE or imported == importer:
                continue
            for detail in g.get_import_details(importer=importer, imported=imported):
                found.append({**detail, "local": detail["line_number"] in local})
    return found


def cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), largest first."""
    succ: dict[str, set[str]] = {}
    for a, b in edges:
        succ.setdefault(a, set()).add(b)
        succ.setdefault(b, set())
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(succ[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(succ):
        if v not in index:
            visit(v)
    return sorted(out, key=len, reverse=True)


def describe(component: list[str], imports: list[dict]) -> str:
    members = set(component)
    return "\n".join(
        f"  {i['importer']}:{i['line_number']} -> {i['imported']}"
        f"{' (local)' if i['local'] else ''}: {i['line_contents']}"
        for i in imports if i["importer"] in members and i["imported"] in members)


def contract_ids() -> list[str]:
    config = configparser.ConfigParser()
    config.read(CONTRACTS, encoding="utf-8")
    prefix = "importlinter:contract:"
    return [section[len(prefix):] for section in config.sections() if section.startswith(prefix)]


def lint(root: pathlib.Path, contract: str | None = None) -> subprocess.CompletedProcess:
    """import-linter on the bankms package found in root (a fresh process, so that a copy of the
    package is the one analysed), limited to one contract when given."""
    limit = (contract,) if contract else ()
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(CONTRACTS)!r}, "
            f"limit_to_contracts={limit!r}, no_cache=True, no_logo=True))")
    return subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, timeout=300)


def test_the_contracts_are_the_expected_ones():
    assert contract_ids() == ["layers", "duckdb", "psycopg", "adbc", "streamlit"]


def test_every_import_contract_is_kept():
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("contract, module, planted, returncode", [
    ("layers", "bankms/domain/chart.py", "# nothing planted: the copy keeps it", 0),
    ("layers", "bankms/domain/chart.py", "from bankms.services import ledger", 1),
    ("layers", "bankms/store/files.py", "from ..reporting import analytics", 1),
    ("layers", "bankms/stray.py", "x = 1", 1),  # a top-level module in no layer
    ("duckdb", "bankms/services/home.py", "# nothing planted: the copy keeps it", 0),
    ("duckdb", "bankms/services/home.py", "import duckdb", 1),
    ("duckdb", "bankms/reporting/analytics.py", "from duckdb import connect", 1),
    ("psycopg", "bankms/services/home.py", "# nothing planted: the copy keeps it", 0),
    ("psycopg", "bankms/services/home.py", "import psycopg", 1),
    ("psycopg", "bankms/reporting/analytics.py", "from psycopg import errors", 1),
    ("adbc", "bankms/services/home.py", "# nothing planted: the copy keeps it", 0),
    ("adbc", "bankms/reporting/analytics.py", "import adbc_driver_postgresql.dbapi", 1),
    ("adbc", "bankms/services/home.py", "import adbc_driver_manager", 1),
    ("streamlit", "bankms/domain/text.py", "import streamlit", 1),
    ("streamlit", "bankms/store/db.py", "from streamlit import session_state", 1),
])
def test_each_contract_breaks_on_a_planted_violation(tmp_path, contract, module, planted,
                                                     returncode):
    shutil.copytree(ROOT / PACKAGE, tmp_path / PACKAGE,
                    ignore=shutil.ignore_patterns("__pycache__", "fonts", "resources"))
    target = tmp_path / module
    text = target.read_text(encoding="utf-8") if target.exists() else ""
    target.write_text(text + f"\n{planted}\n", encoding="utf-8")
    done = lint(tmp_path, contract)
    assert done.returncode == returncode, done.stdout + done.stderr
    assert ("BROKEN" in done.stdout) == bool(returncode), done.stdout


@pytest.mark.parametrize("external, layer, exceptions", [
    ("streamlit", None, set()),
    ("duckdb", DUCKDB_LAYER, DUCKDB_EXCEPTIONS),
    ("psycopg", DUCKDB_LAYER, set()),
    ("adbc_driver_postgresql", DUCKDB_LAYER, set()),
])
def test_only_the_allowed_modules_import(external, layer, exceptions):
    g = graph()
    importers = g.find_modules_that_directly_import(external) if external in g.modules else set()
    outside = {m for m in importers if layer is None or not (m == layer or m.startswith(layer + "."))}
    assert outside <= exceptions, f"{external} imported by {sorted(outside - exceptions)}"
    assert outside == exceptions, \
        f"{sorted(exceptions - outside)} no longer import {external}: drop them from the list"


@pytest.mark.parametrize("counting", ["module-level", "module-level and local"])
def test_no_import_cycle(counting):
    imports = internal_imports()
    considered = [i for i in imports if not i["local"] or (
        counting != "module-level"
        and (i["importer"], i["imported"]) not in LOCAL_CYCLE_IMPORTS)]
    found = cycles({(i["importer"], i["imported"]) for i in considered})
    assert not found, "import cycles:\n" + "\n\n".join(
        describe(component, considered) for component in found)


def test_the_allowed_local_cycle_imports_are_local_commented_and_still_needed():
    imports = internal_imports()
    for importer, imported in sorted(LOCAL_CYCLE_IMPORTS):
        details = [i for i in imports if (i["importer"], i["imported"]) == (importer, imported)]
        assert details, f"{importer} no longer imports {imported}: drop it from the list"
        lines = module_path(importer).read_text(encoding="utf-8").splitlines()
        for detail in details:
            n = detail["line_number"]
            assert detail["local"], f"{importer}:{n} imports {imported} at module level"
            assert "#" in lines[n - 1] or lines[n - 2].strip().startswith("#"), \
                f"{importer}:{n}: say why this local import may close a cycle"
    # Without its entries, each must close a cycle again (else it is not needed in the list).
    everything = {(i["importer"], i["imported"]) for i in imports}
    for pair in LOCAL_CYCLE_IMPORTS:
        assert any(set(pair) <= set(c) for c in cycles(everything)), f"{pair} closes no cycle"


def test_nothing_but_the_entry_points_imports_bank():
    importers = set(graph().find_modules_that_directly_import(f"{PACKAGE}.bank"))
    assert importers <= BANK_IMPORTERS, \
        f"bank.py imported by {sorted(importers - BANK_IMPORTERS)}: take what a service needs " \
        "from a leaf module (chart.py, keys.py, ...) or through the Bank object it is handed"


@pytest.mark.parametrize("edges, expected", [
    ({("a", "b"), ("b", "c")}, []),
    ({("a", "b"), ("b", "a"), ("b", "c")}, [["a", "b"]]),
    ({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e"), ("e", "d")},
     [["a", "b", "c"], ["d", "e"]]),
])
def test_cycles_finds_each_strongly_connected_component(edges, expected):
    assert cycles(edges) == expected


# Constants with one home: (name, the module that defines it). Others import it from there.
# BASIS_POINTS_PER_UNIT was in both charges.py and tax.py; neither is below the other (charges
# -> tax would close a cycle through settings, workdays and loans), so it lives in the leaf.
ONE_HOME = [("BASIS_POINTS_PER_UNIT", "bankms/domain/money.py")]


@pytest.mark.parametrize("name, home", ONE_HOME)
def test_a_shared_constant_is_defined_in_one_module(name, home):
    defined = []
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            targets = (node.targets if isinstance(node, ast.Assign)
                       else [node.target] if isinstance(node, ast.AnnAssign) else [])
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                defined.append(path.relative_to(ROOT).as_posix())
    assert defined == [home]
