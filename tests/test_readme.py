"""The README's examples run as shown and print what they say.

Two kinds of block are checked, in the sections named below:
- a ```python block runs on its own (a fresh namespace: it imports what it uses), and each line
  `print(...)  # text` prints exactly `text`, in order;
- a ```pycon block is a console session: each `>>> ` line runs as Python's console runs it (an
  expression's value is shown), and the lines below it are what it prints; an exception shows as the
  last line of its traceback (`ValueError: ...`).
"""

import contextlib
import io
import re
import traceback
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"

# the sections whose blocks are checked; each must hold at least one block of its kind
PYTHON_SECTIONS = [
    "The main job: `tinygrad-lr fit`",
    "The engine in ten lines",
    "Your own differentiable op",
    "Derivatives of any order: `tl.autograd`",
    "A captured step: the same loop, recorded once",
    "What the numbers are worth: `tl.stats`",
]
CONSOLE_SECTIONS = ["When things go wrong", "A captured step: the same loop, recorded once"]

_HEADING_OR_BLOCK = re.compile(r"^#{2,3} (?P<heading>[^\n]*)$|^```(?P<language>\w*)\n(?P<code>.*?)^```$", re.M | re.S)
_PRINT_WITH_OUTPUT = re.compile(r"^\s*print\(.*\)  # (?P<output>.*)$")


def _blocks(language: str) -> list[tuple[str, str]]:
    """(section heading, code) of every fenced block in `language`, in README order."""
    found, heading = [], None
    for match in _HEADING_OR_BLOCK.finditer(README.read_text(encoding="utf-8")):
        if match["heading"] is not None:
            heading = match["heading"]
        elif match["language"] == language:
            found.append((heading, match["code"]))
    return found


def _in_sections(language: str, sections: list[str]) -> list[tuple[str, str]]:
    blocks = [(heading, code) for heading, code in _blocks(language) if heading in sections]
    assert {heading for heading, _ in blocks} == set(sections), f"a section lost its {language} blocks: {sections}"
    return blocks


def _block_id(block: tuple[str, str]) -> str:
    return block[0]


@pytest.mark.parametrize("block", _in_sections("python", PYTHON_SECTIONS), ids=_block_id)
def test_python_block_runs_on_its_own_and_prints_its_comments(block):
    heading, code = block
    expected = [m["output"] for line in code.splitlines() if (m := _PRINT_WITH_OUTPUT.match(line))]
    assert expected, f"no `print(...)  # output` line in a block of {heading!r}"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exec(compile(code, f"README.md ({heading})", "exec"), {"__name__": "__main__"})
    assert stdout.getvalue().splitlines() == expected


def test_first_order_op_refuses_create_graph_with_the_error_the_readme_quotes():
    """The prose below the first `Sin`: asked for a gradient with a graph, it raises the error quoted there."""
    (_, code), *_ = _in_sections("python", ["Your own differentiable op"])
    namespace = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, "README.md", "exec"), namespace)
    quoted = re.search(r"`RuntimeError: (.+?) \.\.\.`", README.read_text(encoding="utf-8"), re.S)
    assert quoted, "the README no longer quotes the RuntimeError of an array-only backward"
    tl, x = namespace["tl"], namespace["x"]
    with pytest.raises(RuntimeError) as error:
        tl.autograd.grad(namespace["Sin"].apply(x).sum(), x, create_graph=True)
    assert str(error.value).startswith(" ".join(quoted[1].split()))


def _session(code: str) -> list[tuple[str, list[str]]]:
    """(statement, the lines it prints) for each `>>> ` line of a console block."""
    steps: list[tuple[str, list[str]]] = []
    for line in code.splitlines():
        if line.startswith(">>> "):
            steps.append((line[4:], []))
        else:
            assert steps, f"output before the first >>> line: {line!r}"
            steps[-1][1].append(line)
    return steps


def _console(statement: str, namespace: dict) -> list[str]:
    """What Python's console prints for one line: an expression's repr, or its exception's last line."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        try:
            exec(compile(statement, "<console>", "single"), namespace)
        except Exception as error:
            print(traceback.format_exception_only(type(error), error)[-1], end="")
    return stdout.getvalue().splitlines()


@pytest.mark.parametrize("block", _in_sections("pycon", CONSOLE_SECTIONS), ids=_block_id)
def test_console_session_prints_what_it_shows(block):
    """Seeded where it trains, so that it prints the same every time."""
    _, code = block
    for _ in range(2):
        namespace = {"__name__": "__main__"}
        for statement, shown in _session(code):
            assert _console(statement, namespace) == shown, statement
