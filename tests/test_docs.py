"""The docstrings that the API reference is built from name only things that exist.

pdoc links a name it can resolve and leaves any other as plain text, silently; CI's pdoc build fails on pdoc's
warnings (see .ci/run), and this test fails on a reference to a name of the package that is not there:
`tl.solvers.ridge` or `tinygrad_lr.solvers.ridge` in backticks, anywhere in a docstring of the package.
"""

import importlib
import inspect
import pkgutil
import re
import textwrap

import tinygrad_lr

_REFERENCE = re.compile(r"`(?P<name>(?:tl|tinygrad_lr)(?:\.[A-Za-z_]\w*)+)")


def _modules():
    """Every module of the package, the lazily loaded `estimators` included (`__main__` runs the command line)."""
    names = [info.name for info in pkgutil.iter_modules(tinygrad_lr.__path__) if info.name != "__main__"]
    return [tinygrad_lr, *(importlib.import_module(f"tinygrad_lr.{name}") for name in sorted(names))]


def _documented(module):
    """(qualified name, docstring) of the module and of each class, function and method defined in it."""
    yield module.__name__, module.__doc__
    for name, member in vars(module).items():
        if not (inspect.isclass(member) or inspect.isfunction(member)) or member.__module__ != module.__name__:
            continue
        yield f"{module.__name__}.{name}", member.__doc__
        if inspect.isclass(member):
            for attribute, value in vars(member).items():
                if isinstance(value, (staticmethod, classmethod, property)):
                    value = value.fget if isinstance(value, property) else value.__func__
                if inspect.isfunction(value):
                    yield f"{module.__name__}.{name}.{attribute}", value.__doc__


def _resolves(reference: str) -> bool:
    """Whether `tl.a.b` (`tl` standing for tinygrad_lr) names a module, or an attribute reached from one."""
    parts = ["tinygrad_lr", *reference.split(".")[1:]]
    for split in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def test_docstring_references_to_the_package_resolve():
    broken = [
        f"{where}: `{match['name']}`"
        for module in _modules()
        for where, doc in _documented(module)
        for match in _REFERENCE.finditer(doc or "")
        if not _resolves(match["name"])
    ]
    assert not broken, "docstrings refer to names that do not exist:\n" + "\n".join(broken)


def test_the_reference_check_sees_a_broken_reference():
    assert _resolves("tl.solvers.ridge") and _resolves("tinygrad_lr.estimators.LinearRegressor")
    assert _resolves("tl.Tensor.backward") and _resolves("tl.cli")
    assert not _resolves("tl.solvers.rigde") and not _resolves("tl.nosuchmodule.ridge")


def _public(module):
    """(qualified name, object) of what the API reference shows of `module`: the names of its `__all__` (or
    its names without a leading underscore) defined in it, and each such class's public methods and
    properties (`__init__` is the class's own docstring)."""
    names = getattr(module, "__all__", None) or [name for name in vars(module) if not name.startswith("_")]
    for name in names:
        member = getattr(module, name)
        if not (inspect.isclass(member) or inspect.isfunction(member)) or member.__module__ != module.__name__:
            continue
        yield f"{module.__name__}.{name}", member
        if inspect.isclass(member):
            for attribute, value in vars(member).items():
                if attribute.startswith("_") or not attribute.isascii():  # (mutmut's copies, xǁ..., are no API)
                    continue
                if isinstance(value, property):
                    yield f"{module.__name__}.{name}.{attribute}", value
                elif inspect.isfunction(getattr(member, attribute, None)) or isinstance(
                    value, (staticmethod, classmethod)
                ):
                    yield f"{module.__name__}.{name}.{attribute}", getattr(member, attribute)


def test_every_public_name_has_a_docstring():
    """As the API reference shows them: a method that overrides a documented one says what it overrides
    says (inspect.getdoc and pdoc both take the base class's docstring)."""
    undocumented = [
        where
        for module in _modules()
        for where, member in _public(module)
        if not ((member.__doc__ if isinstance(member, property) else inspect.getdoc(member)) or "").strip()
    ]
    assert not undocumented, f"{len(undocumented)} public names without a docstring:\n" + "\n".join(undocumented)


def test_the_package_page_starts_with_a_quick_start_that_runs(capsys):
    """The top of the API reference: a few lines that train a model and print what they say they print."""
    _, *rest = tinygrad_lr.__doc__.split("\n\n")
    assert "Quick start" in rest[0], "the package's page does not begin with its quick start"
    block = []
    for lines in rest[1:]:  # the indented paragraphs right after it: the code
        if not lines.startswith("    "):
            break
        block.append(lines)
    code = textwrap.dedent("\n\n".join(block))
    assert 5 <= len([line for line in code.splitlines() if line.strip()]) <= 12, code
    exec(compile(code, "tinygrad_lr.__doc__", "exec"), {})
    prints = [line for line in code.splitlines() if line.lstrip().startswith("print(") and "  # " in line]
    shown = [line.split("  # ", 1)[1] for line in prints]
    assert capsys.readouterr().out.splitlines() == shown


def _imports_of_the_package() -> dict[str, set[str]]:
    """module -> the package's modules it imports, anywhere in its code (inside functions too), read from its
    source: `from tinygrad_lr import x`, `from tinygrad_lr.x import ...`, `import tinygrad_lr.x`."""
    import ast
    from pathlib import Path

    folder = Path(tinygrad_lr.__file__).parent
    names = {path.stem for path in folder.glob("*.py")} - {"__init__", "__main__"}
    graph: dict[str, set[str]] = {}
    for name in names:
        found = set()
        for node in ast.walk(ast.parse((folder / f"{name}.py").read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "tinygrad_lr":
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tinygrad_lr."):
                found.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("tinygrad_lr.")}
        graph[name] = (found & names) - {name}
    return graph


def test_the_import_graph_has_no_circle_but_the_engines_own():
    """Lower layers never import higher ones (DESIGN.md); the one circle is tensor <-> ops (ops are Functions,
    and Tensor's operators apply them)."""
    graph = _imports_of_the_package()
    circles = set()
    for start in graph:  # every module reachable from `start` that reaches `start` back
        stack, seen = [start], set()
        while stack:
            for after in graph[stack.pop()]:
                if after == start:
                    circles.add(start)
                elif after not in seen:
                    seen.add(after)
                    stack.append(after)
    assert circles == {"tensor", "ops"}, f"modules on an import circle: {sorted(circles)}"
    assert "training" not in graph["nn"] and "nn" in graph["training"]
