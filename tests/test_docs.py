"""The docstrings that the API reference is built from name only things that exist.

pdoc links a name it can resolve and leaves any other as plain text, silently; CI's pdoc build fails on pdoc's
warnings (see .ci/run), and this test fails on a reference to a name of the package that is not there:
`tl.solvers.ridge` or `tinygrad_lr.solvers.ridge` in backticks, anywhere in a docstring of the package.
"""

import importlib
import inspect
import pkgutil
import re

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
