"""The shape of the code (shared/ARCHITECTURE.md): imports go one way, fronts → capabilities → core,
with no cycle, and a capability uses another only through its public package."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "igpt_lite"
CAPABILITIES = {"train", "sample", "attention", "probe", "bias", "interop"}
# the CLI's pieces sit above everything; studies above the capabilities; the rest is the core
TOP = {"igpt_lite", "igpt_lite.__main__", "igpt_lite.cli", "igpt_lite.arguments"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(name: str) -> int:
    parts = name.split(".")
    if name in TOP or parts[-1] == "cli":
        return 3
    if len(parts) > 1 and parts[1] == "studies":
        return 2
    if len(parts) > 1 and parts[1] in CAPABILITIES:
        return 1
    return 0


def imports(path: Path) -> set[str]:
    """igpt_lite modules that `path` imports, at any depth of the file (lazy imports count)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("igpt_lite"):
                continue
            for alias in node.names:  # `from . import data` imports the module igpt_lite.data
                sub = f"{target}.{alias.name}"
                found.add(sub if (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py").exists()
                          or (PACKAGE.parent / sub.replace(".", "/")).is_dir() else target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("igpt_lite")}
    found.discard(name)
    return found


GRAPH = {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_import_goes_down_or_sideways_within_its_layer():
    wrong = [f"{src} (layer {layer(src)}) imports {dst} (layer {layer(dst)})"
             for src, dsts in GRAPH.items() for dst in dsts if layer(dst) > layer(src)]
    assert not wrong, "\n".join(wrong)


def test_a_capability_uses_another_only_through_its_public_package():
    def capability(name):
        parts = name.split(".")
        return parts[1] if len(parts) > 1 and parts[1] in CAPABILITIES else None

    wrong = [f"{src} imports {dst}" for src, dsts in GRAPH.items() for dst in dsts
             if capability(src) and capability(dst) and capability(src) != capability(dst)
             and dst != f"igpt_lite.{capability(dst)}"]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    """Among the modules' top-level imports (a lazy import inside a function breaks no cycle at import
    time, but it is still a loop a reader must follow, so lazy ones count too)."""
    seen, stack, cycles = set(), [], []

    def visit(node):
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for nxt in sorted(GRAPH.get(node, ())):
            if nxt in GRAPH and not (nxt == node.rsplit(".", 1)[0] and node.startswith(nxt + ".")):
                visit(nxt)
        stack.pop()

    for module in GRAPH:
        visit(module)
    assert not cycles, "\n".join(" → ".join(c) for c in cycles)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_is_over_400_lines(module):
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
    lines = len(path.read_text().splitlines())
    assert lines <= 420, f"{module} has {lines} lines: split it by sub-capability"

