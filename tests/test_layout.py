"""The package's shape: no import cycle inside seqexit, one module that knows a model folder's
files, and documentation whose links resolve."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("seqexit", "cli", "spacy_plugin")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path) -> set[str]:
    """The seqexit modules `path` imports when it is imported (not inside functions, not under
    TYPE_CHECKING), resolved to module names."""
    tree = ast.parse(path.read_text())
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "seqexit":
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "seqexit")
    return found


def test_seqexit_has_no_import_cycle():
    modules = {module_name(p): p for p in (ROOT / "seqexit").rglob("*.py")}
    def with_packages(importer: str, targets: set[str]) -> set[str]:
        """Importing seqexit.a.b from outside seqexit.a runs seqexit/a/__init__.py first: that is
        an edge too (the root package's own __init__ is left out: it is what imports the rest)."""
        out = set(targets)
        for target in targets:
            parts = target.split(".")
            out.update(package for package in (".".join(parts[:k]) for k in range(2, len(parts)))
                       if not importer.startswith(package + "."))
        return out

    graph = {name: {t for t in with_packages(name, top_level_imports(path)) if t in modules and t != name}
             for name, path in modules.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
    """The check above can fail: a module importing its own importer is reported."""
    package = tmp_path / "seqexit"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import x\n")
    (package / "b.py").write_text("from seqexit.a import y\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    try:
        test_seqexit_has_no_import_cycle()
    except AssertionError as err:
        assert "seqexit.a -> seqexit.b -> seqexit.a" in str(err)
    else:
        raise AssertionError("the cycle was not found")


def test_only_the_bundle_knows_the_model_folder_files():
    # (model.safetensors is left out: Hugging Face backbone folders use the name too)
    names = ("seqexit.json", "presets.json", "delta.safetensors", "temperatures.json", "training.json",
             "learned_exits.safetensors", "compact.json")
    holders = {name: sorted(str(p.relative_to(ROOT)) for package in PACKAGES for p in (ROOT / package).rglob("*.py")
                            if f'"{name}"' in p.read_text()) for name in names}
    assert holders == {name: ["seqexit/bundle.py"] for name in names}
    opened = [str(p.relative_to(ROOT)) for package in PACKAGES for p in (ROOT / package).rglob("*.py")
              if "seqexit.json" in p.read_text()]
    assert opened == ["seqexit/bundle.py"]


def test_documentation_links_resolve():
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "check_links.py")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_package_is_in_the_wheel():
    """pyproject.toml lists its packages by hand: a new subpackage missing there imports in the
    repository and fails in an installed wheel."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts) for top in ("seqexit", "cli", "spacy_plugin")
             for init in (ROOT / top).rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
