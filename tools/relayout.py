"""Move the flat modules of bankms/ into the layered folders of issue 14 (domain, services,
store, reporting, demo) and rewrite every reference to them, so that a branch cut before the
move can replay it: `python tools/relayout.py` from the repository's root, then commit.

What it rewrites, in bankms/, pages/, tests/, benchmarks/, tools/, app.py, .ci/, README.md and
docs/:
- relative imports inside bankms (`from .x import`, `from . import x, y as z`), recomputed from
  where each module lived to where it lives now; a statement whose names land in different
  packages is split into one statement per package, binding the same names;
- `from bankms import x` where x moved (the same splitting);
- every dotted name `bankms.x...` where x moved (imports, attribute paths, monkeypatch and
  mock.patch targets, import_module strings, `python -m bankms.x`), and every path `bankms/x.py`.

It is idempotent: a module already at its new place is not moved again and references already
rewritten do not match the old names. It fails loudly (exit status 1, file:line) on a reference
it cannot rewrite: a module name built at run time (`"bankms." + name`, f"bankms.{name}"), a
`git mv` whose source and destination both exist, or an old name left after the rewrite. A line
may carry `# relayout: ok` to say a reviewed dynamic reference holds no old module name.
"""
from __future__ import annotations

import ast
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Old module (under bankms) -> new module. Modules not named here stay where they are: the
# package's public face (__init__), __main__, cli, bank (the wiring) and operations (backup and
# restore of the whole bank: restore opens the copy with open_bank, so it sits beside bank.py).
MOVES = {
    # domain: pure rules, no database.
    "accountnum": "domain.accountnum",
    "chain": "domain.chain",
    "chart": "domain.chart",
    "dates": "domain.dates",
    "errors": "domain.errors",
    "ids": "domain.ids",
    "keys": "domain.keys",
    "labels": "domain.labels",
    "loan_replay": "domain.loan_replay",
    "money": "domain.money",
    "schedule": "domain.schedule",
    "security": "domain.security",
    "text": "domain.text",
    "validate": "domain.validate",
    # services: the bank's rules, each call takes an Actor and writes through the store.
    "accounts": "services.accounts",
    "approvals": "services.approvals",
    "audit": "services.audit",
    "audit_sets": "services.audit_sets",
    "bulk": "services.bulk",
    "businessday": "services.businessday",
    "charges": "services.charges",
    "customers": "services.customers",
    "home": "services.home",
    "ledger": "services.ledger",
    "loans": "services.loans",
    "once": "services.once",
    "outbox": "services.outbox",
    "payments": "services.payments",
    "posting_frames": "services.posting_frames",
    "settings": "services.settings",
    "signing": "services.signing",
    "standing_orders": "services.standing_orders",
    "throttle": "services.throttle",
    "tokens": "services.tokens",
    "users": "services.users",
    "workdays": "services.workdays",
    "deposit_products": "services.deposits.products",
    "term_deposits": "services.deposits.term",
    "deposit_eod": "services.deposits.eod",
    "tax": "services.deposits.tax",
    "eod": "services.eod.run",
    "eod_auto": "services.eod.auto",
    "eod_checks": "services.eod.checks",
    # store: the only layer that imports duckdb.
    "db": "store.db",
    "writer": "store.writer",
    "chain_store": "store.chains",
    "files": "store.files",
    # reporting: the read side.
    "analytics": "reporting.analytics",
    "documents": "reporting.documents",
    "drill": "reporting.drill",
    "export": "reporting.export",
    "export_check": "reporting.export_check",
    "figures": "reporting.figures",
    "receipts": "reporting.receipts",
    "reports": "reporting.reports",
    # demo: the demo bank generator; demo.py becomes the package itself, so `bankms.demo`
    # keeps its name (and its public build_demo) while its two helpers move inside.
    "demo": "demo",
    "demo_loans": "demo.loans",
    "demo_codes": "demo.codes",
}

# The new packages, with what each owns (their __init__.py docstrings).
PACKAGES = {
    "domain": "Pure rules of the bank, no I/O: money, account numbers, dates, ids, errors, "
              "roles and permissions,\nlabels, text, hash chains, the chart of accounts, "
              "validation, keys, schedules and the loan replay.",
    "services": "The bank's rules: each call takes the acting Actor, checks it may act, and "
                "writes through the store.",
    "services.deposits": "Deposit products, term deposits, their end-of-day steps and "
                         "withholding tax.",
    "services.eod": "End of day: the run and its steps' order (run), the automatic close "
                    "(auto) and the ledger checks\n(checks).",
    "store": "Storage: schema and unit of work (db), the writer thread (writer), hash-chain "
             "tables (chains) and\nthe bank's files. The only layer that imports duckdb.",
    "reporting": "The read side: analytics SQL, drill-downs, figures, reports, documents, "
                 "receipts and the auditor's\nexport.",
}

SCOPE_DIRS = ("bankms", "pages", "tests", "benchmarks", "tools", ".ci", "docs")
SCOPE_FILES = ("app.py", "README.md")
TEXT_SUFFIXES = {".py", ".md", ".txt", ".ini", ".toml", ".cfg", ".sh", ".yml", ".yaml", ""}
SELF = pathlib.Path(__file__).resolve()
OK_MARK = "# relayout: ok"


class RelayoutError(Exception):
    pass


def old_path(old: str) -> pathlib.Path:
    return ROOT / "bankms" / f"{old}.py"


def new_path(old: str) -> pathlib.Path:
    new = MOVES[old]
    if new in PACKAGES or any(m != old and MOVES[m].startswith(new + ".") for m in MOVES):
        return ROOT / "bankms" / new.replace(".", "/") / "__init__.py"
    return ROOT / "bankms" / f"{new.replace('.', '/')}.py"


def module_of(path: pathlib.Path) -> tuple[str, bool]:
    """(dotted module name, is a package) of a file under ROOT."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


# Full dotted names: bankms.<old> -> bankms.<new>, identities left out.
FULL = {f"bankms.{old}": f"bankms.{new}" for old, new in MOVES.items() if old != new}
_DOTTED = re.compile(r"(?<![\w.])(" + "|".join(
    re.escape(k) for k in sorted(FULL, key=len, reverse=True)) + r")(?![\w])")
_PATHS = {f"bankms/{old}.py": str(new_path(old).relative_to(ROOT)) for old in MOVES}
_PATH = re.compile(r"(?<![\w/.])(" + "|".join(
    re.escape(k) for k in sorted(_PATHS, key=len, reverse=True)) + r")(?![\w])")
_DYNAMIC = re.compile(r"""(f["']bankms[./]\{|["']bankms[./]["']\s*\+|__import__\(\s*f?["']bankms"""
                      r"""|import_module\(\s*f["']bankms)""")


def rewrite_names(text: str) -> str:
    text = _DOTTED.sub(lambda m: FULL[m.group(1)], text)
    return _PATH.sub(lambda m: _PATHS[m.group(1)], text)


def resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of `from <level dots><target> import` written in `module`."""
    if level == 0:
        return target or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 > len(parts) - 1:
        raise RelayoutError(f"{module}: relative import beyond the top package")
    parts = parts[:len(parts) - (level - 1)]
    return ".".join(parts + ([target] if target else []))


def relative(target: str, module: str, is_package: bool) -> str:
    """`target` written as a relative module from `module` (e.g. '..domain.money')."""
    base = module.split(".") if is_package else module.split(".")[:-1]
    goal = target.split(".")
    common = 0
    while common < min(len(base), len(goal)) and base[common] == goal[common]:
        common += 1
    return "." * (len(base) - common + 1) + ".".join(goal[common:])


def _offsets(text: str):
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def at(lineno: int, col_bytes: int) -> int:
        line = lines[lineno - 1]
        return starts[lineno - 1] + len(line.encode("utf-8")[:col_bytes].decode("utf-8"))
    return at


def rewrite_imports(text: str, module: str, is_package: bool, final: str,
                    final_is_package: bool, where: str) -> str:
    """Rewrite the relative imports of a bankms module (module: where it lives now; final:
    where it will live) and every `from bankms[.pkg] import <moved module>` anywhere."""
    tree = ast.parse(text)
    at = _offsets(text)
    edits = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        source = resolve(module, is_package, node.level, node.module)
        if source != "bankms" and not source.startswith("bankms."):
            continue
        new_source = FULL.get(source, source)
        # Each imported name that is itself a moved module goes to its new parent package.
        groups: dict[str, list[str]] = {}
        for alias in node.names:
            full = f"{source}.{alias.name}"
            if alias.name != "*" and full in FULL:
                target = FULL[full]
                parent, _, last = target.rpartition(".")
                bound = alias.asname or alias.name
                groups.setdefault(parent, []).append(
                    last if bound == last else f"{last} as {bound}")
            else:
                groups.setdefault(new_source, []).append(
                    alias.name + (f" as {alias.asname}" if alias.asname else ""))
        moved_file = (module, is_package) != (final, final_is_package)
        if new_source == source and list(groups) == [source] and not (node.level and moved_file):
            continue

        def spell(target: str) -> str:
            return relative(target, final, final_is_package) if node.level else target
        start = at(node.lineno, node.col_offset)
        end = at(node.end_lineno, node.end_col_offset)
        statement = text[start:end]
        if list(groups) == [new_source]:
            head = re.match(r"from\s+([.\w]+)\s+import", statement)
            if not head:
                raise RelayoutError(f"{where}:{node.lineno}: cannot read {statement!r}")
            replacement = statement[:head.start(1)] + spell(new_source) + statement[head.end(1):]
        else:
            if "#" in statement:
                raise RelayoutError(f"{where}:{node.lineno}: a comment inside an import that must "
                                    f"be split: {statement!r}")
            line_start = text.rfind("\n", 0, start) + 1
            indent = text[line_start:start]
            if indent.strip():
                raise RelayoutError(f"{where}:{node.lineno}: an import to split shares its line")
            replacement = ("\n" + indent).join(
                f"from {spell(parent)} import {', '.join(names)}"
                for parent, names in sorted(groups.items()))
        edits.append((start, end, replacement))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def in_scope() -> list[pathlib.Path]:
    found = [ROOT / name for name in SCOPE_FILES if (ROOT / name).is_file()]
    for folder in SCOPE_DIRS:
        for path in sorted((ROOT / folder).rglob("*")):
            if (path.is_file() and path.resolve() != SELF and path.suffix in TEXT_SUFFIXES
                    and "__pycache__" not in path.parts):
                found.append(path)
    return found


def final_place(path: pathlib.Path) -> pathlib.Path:
    for old in MOVES:
        if path == old_path(old):
            return new_path(old)
    return path


def check(text: str, where: str) -> None:
    for n, line in enumerate(text.splitlines(), 1):
        if OK_MARK in line:
            continue
        if _DYNAMIC.search(line):
            raise RelayoutError(f"{where}:{n}: a bankms module name built at run time; rewrite "
                                f"it by hand, then mark the line '{OK_MARK}': {line.strip()}")
        left = _DOTTED.search(line) or _PATH.search(line)
        if left:
            raise RelayoutError(f"{where}:{n}: {left.group(1)} is left after the rewrite")


def main() -> int:
    try:
        for old in MOVES:
            src, dest = old_path(old), new_path(old)
            if src.exists() and dest.exists():
                raise RelayoutError(f"both {src.relative_to(ROOT)} and "
                                    f"{dest.relative_to(ROOT)} exist")
            if not src.exists() and not dest.exists():
                raise RelayoutError(f"neither {src.relative_to(ROOT)} nor "
                                    f"{dest.relative_to(ROOT)} exists")
        changed = {}
        for path in in_scope():
            where = str(path.relative_to(ROOT))
            text = path.read_text(encoding="utf-8")
            new = text
            if path.suffix == ".py":
                module, is_package = module_of(path)
                final, final_is_package = module_of(final_place(path))
                try:
                    new = rewrite_imports(new, module, is_package, final, final_is_package, where)
                except SyntaxError as exc:
                    raise RelayoutError(f"{where}: cannot parse: {exc}") from None
            new = rewrite_names(new)
            check(new, where)
            if new != text:
                changed[path] = new
        for path, text in changed.items():
            path.write_text(text, encoding="utf-8")
        moved = 0
        for old in MOVES:
            src, dest = old_path(old), new_path(old)
            if src.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                subprocess.run(["git", "mv", str(src), str(dest)], cwd=ROOT, check=True)
                moved += 1
        for package, doc in PACKAGES.items():
            init = ROOT / "bankms" / package.replace(".", "/") / "__init__.py"
            if not init.exists():
                init.write_text(f'"""{doc}"""\n', encoding="utf-8")
                subprocess.run(["git", "add", str(init)], cwd=ROOT, check=True)
    except RelayoutError as exc:
        print(f"relayout: {exc}", file=sys.stderr)
        return 1
    print(f"relayout: {moved} module(s) moved, {len(changed)} file(s) rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
