"""The layering of docs/ARCHITECTURE.md, checked on the source: repro makes runs and never imports analysis,
orchestration (emogeo) sits above both, tools sit outside the library, no import cycles, modules readable in
one sitting."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("emogeo", "repro", "analysis", "tools")
MAX_LINES = 600
# What each package may import from the others (arrows point down).
ALLOWED = {"emogeo": {"repro", "analysis"}, "analysis": {"repro"}, "repro": set(), "tools": {"repro", "analysis", "emogeo"}}


def _modules():
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            yield pkg, ".".join(f.relative_to(ROOT).with_suffix("").parts), f


def _imports(name: str, path: Path) -> set[str]:
    """Absolute names of the project modules this file imports (at any depth: lazy imports count too)."""
    out = set()
    pkg_parts = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = pkg_parts[:len(pkg_parts) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}  # `from . import x` names a module
    return {m for m in out if m.split(".")[0] in PACKAGES}


MODULES = {name: (pkg, path) for pkg, name, path in _modules()}
GRAPH = {name: {m for m in _imports(name, path) if m in MODULES and m != name} for name, (_, path) in MODULES.items()}


@pytest.mark.parametrize("pkg", PACKAGES)
def test_arrows_point_down(pkg):
    wrong = sorted(f"{name} imports {m}" for name, (p, _) in MODULES.items() if p == pkg
                   for m in _imports(name, MODULES[name][1])
                   if m.split(".")[0] not in ALLOWED[pkg] | {pkg})
    assert not wrong, wrong


def test_no_import_cycles():
    def cycle_from(start):
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in GRAPH[node]:
                if nxt == start:
                    return path + [start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
        return None

    cycles = [c for c in (cycle_from(m) for m in GRAPH if not m.endswith("__init__")) if c]
    cycles = [c for c in cycles if not any(x.split(".")[-1] == "__init__" for x in c)]
    assert not cycles, cycles[:3]


def test_modules_fit_one_sitting():
    long = {name: n for name, (_, path) in MODULES.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long


def test_the_checker_sees_a_real_cycle_and_a_wrong_arrow(tmp_path):
    """The rules above can fail: a module pair that imports each other and an upward import are caught."""
    (tmp_path / "a.py").write_text("from .b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from .a import y\n    import analysis.rsa\n")
    assert _imports("repro.a", tmp_path / "a.py") == {"repro.b", "repro.b.x"}
    assert _imports("repro.b", tmp_path / "b.py") >= {"repro.a", "analysis.rsa"}
