"""The code's shape (issue 27), read from the source with `ast`: no import circle among
docora_admin's modules, counting imports inside functions, and no service that imports tasks.py
(services queue tasks through task_handles)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "docora_admin"


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(name, path):
    """The docora_admin modules `name` imports anywhere in its source. `from X import n` is an
    import of X.n when that is a module, else of X."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{node.module}" if node.module else anchor
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {module for module in found if module in MODULES and module != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _circles():
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in GRAPH[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    return circles


def test_the_walk_sees_imports_inside_functions():
    # consumer.py imports watchdog at module level; tasks.py is imported inside create_app.
    assert "docora_admin.services.jobs.watchdog" in GRAPH["docora_admin.consumer"]
    assert "docora_admin.tasks" in GRAPH["docora_admin"]


def test_no_import_circle():
    assert _circles() == []


def test_no_service_imports_tasks():
    offenders = sorted(name for name, imported in GRAPH.items()
                       if name.startswith("docora_admin.services")
                       and "docora_admin.tasks" in imported)
    assert offenders == []


def test_services_are_grouped_by_concern():
    loose = sorted(path.name for path in (PACKAGE / "services").glob("*.py")
                   if path.name != "__init__.py")
    assert loose == []
    for package in (PACKAGE / "services").iterdir():
        if package.is_dir() and package.name != "__pycache__":
            doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
            for module in package.glob("*.py"):
                if module.name != "__init__.py":
                    assert f"{module.stem}:" in doc, (package.name, module.stem)


def test_no_module_is_much_over_300_lines():
    # "Small modules": ~300 lines at most (a little slack, so a docstring line does not fail it).
    long = sorted((len(path.read_text().splitlines()), name) for name, path in MODULES.items()
                  if len(path.read_text().splitlines()) > 320)
    assert long == []
