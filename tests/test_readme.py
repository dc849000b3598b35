"""The README's examples, run as a user pastes them: every block in a fresh, empty folder.

- A ```python block is saved as a script there and run by this Python (`python block.py`). It must
  exit with status 0 and print: first the text of its `print(...)  # text` lines, in order, then the
  ```text block that follows it, when one does (what the README shows it printing).
- A ```text block whose lines start with `$ ` is a shell session: each command runs in bash, in the
  block's folder (so a file one command writes, the next one reads), and prints the lines below it
  (standard output and error together).
- A ```pycon block is a Python console session: each `>>> ` line runs as Python's console runs it
  (an expression's value is shown), and the lines below it are what it prints; an exception shows as
  the last line of its traceback (`ValueError: ...`).

What differs from one run to the next is put aside on both sides before comparing: a progress
line's time per step, the date and time in a summary table, the digits of a number printed alone on
its line past the tenth decimal (`tinygrad-lr predict`'s, as repr writes them), and the folder the
block ran in (shown as /home/you/work). Only the installing blocks are not run here ("Set up", "Development"): they are
what `.ci/run` itself does.
"""

import contextlib
import io
import os
import re
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
SHOWN_FOLDER = "/home/you/work"  # the folder the README's sessions show
NOT_RUN = {"Set up", "Development"}  # installing the package and running its tests: CI's own steps

_HEADING_OR_BLOCK = re.compile(r"^#{2,3} (?P<heading>[^\n]*)$|^```(?P<language>\w*)\n(?P<code>.*?)^```$", re.M | re.S)
_PRINT_WITH_OUTPUT = re.compile(r"^\s*print\(.*\)  # (?P<output>.*)$")
_VARIES = [  # (what varies, what it is shown as on both sides)
    (re.compile(r"(\] - )\d+s \d+(?:us|ms|s)/step"), r"\1<time per step>"),
    (re.compile(r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d \w{3} \d{4}\b"), "<date>"),
    (re.compile(r"\b\d\d:\d\d:\d\d\b"), "<time>"),
    (re.compile(r"(?m)^(-?\d+\.\d{10})\d+$"), r"\1..."),  # predict's 17 digits: the last ones are rounding's
]


def _blocks() -> list[tuple[str, str, str, str | None]]:
    """(section heading, language, code, output) of every fenced block, in README order; a python block's
    output is the ```text block right below it (nothing but blank lines between), or None."""
    text = README.read_text(encoding="utf-8")
    found: list[list] = []  # [heading, language, code, output, where the block ends]
    heading = None
    for match in _HEADING_OR_BLOCK.finditer(text):
        if match["heading"] is not None:
            heading = match["heading"]
            continue
        above = found[-1] if found else None
        right_below = above is not None and not text[above[4] : match.start()].strip()
        if match["language"] == "text" and right_below and above[1] == "python":
            above[3] = match["code"]
        found.append([heading, match["language"], match["code"], None, match.end()])
    return [(heading, language, code, output) for heading, language, code, output, _ in found]


def _of(language: str, sessions_only: bool = False) -> list[tuple[str, str, str | None]]:
    chosen = []
    for heading, kind, code, output in _blocks():
        if kind != language or heading in NOT_RUN or (sessions_only and not code.startswith("$ ")):
            continue
        chosen.append((heading, code, output))
    return chosen


def _ids(blocks: list[tuple]) -> list[str]:
    counts: dict[str, int] = {}
    ids = []
    for heading, *_ in blocks:
        counts[heading] = counts.get(heading, 0) + 1
        ids.append(f"{heading} #{counts[heading]}")
    return ids


def _steady(text: str, folder: Path | None = None) -> list[str]:
    """`text`'s lines with what varies from run to run put aside."""
    if folder is not None:
        text = text.replace(str(folder), SHOWN_FOLDER)
    for pattern, shown in _VARIES:
        text = pattern.sub(shown, text)
    return [line.rstrip() for line in text.splitlines()]


def _environment() -> dict[str, str]:
    """This Python's scripts (tinygrad-lr) first on the PATH, as in the virtual environment CI activates."""
    return {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}


def test_every_block_is_run_here_or_named_as_not_run():
    kinds = {(heading, kind) for heading, kind, *_ in _blocks()}
    assert {heading for heading, kind in kinds if kind == "bash"} == NOT_RUN
    assert {kind for _, kind in kinds} <= {"python", "text", "pycon", "bash", ""}
    unshown = [h for h, kind, code, out in _blocks() if kind == "python" and out is None and "  # " not in code]
    assert not unshown, f"python blocks that show no output to check: {unshown}"


PYTHON = _of("python")


@pytest.mark.parametrize("block", PYTHON, ids=_ids(PYTHON))
def test_python_block_runs_pasted_into_an_empty_folder_and_prints_what_it_shows(block, tmp_path):
    heading, code, output = block
    expected = [m["output"] for line in code.splitlines() if (m := _PRINT_WITH_OUTPUT.match(line))]
    expected += _steady(output) if output is not None else []
    assert expected, f"a block of {heading!r} shows no output"
    (tmp_path / "block.py").write_text(code, encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "block.py"], cwd=tmp_path, env=_environment(), capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, f"{heading}: exit {run.returncode}\n{run.stderr[-3000:]}"
    assert _steady(run.stdout, tmp_path) == _steady("\n".join(expected))


def _steps(code: str, prompt: str) -> list[tuple[str, list[str]]]:
    """(what follows the prompt, the lines printed below it) for each `prompt` line of a session:
    `$ ` for a shell, `>>> ` for Python's console."""
    steps: list[tuple[str, list[str]]] = []
    for line in code.splitlines():
        if line.startswith(prompt):
            steps.append((line[len(prompt) :], []))
        else:
            assert steps, f"output before the first {prompt!r} line: {line!r}"
            steps[-1][1].append(line)
    return steps


SESSIONS = _of("text", sessions_only=True)


@pytest.mark.parametrize("block", SESSIONS, ids=_ids(SESSIONS))
def test_shell_session_runs_in_an_empty_folder_and_prints_what_it_shows(block, tmp_path):
    _, session, _ = block
    for command, shown in _steps(session, "$ "):
        run = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
        )
        assert _steady(run.stdout, tmp_path) == _steady("\n".join(shown)), command


def test_first_order_op_refuses_create_graph_with_the_error_the_readme_quotes():
    """The prose below the first `Sin`: asked for a gradient with a graph, it raises the error quoted there."""
    (_, code, _), *_ = [block for block in PYTHON if block[0] == "Your own differentiable op"]
    namespace = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, "README.md", "exec"), namespace)
    quoted = re.search(r"`RuntimeError: (.+?) \.\.\.`", README.read_text(encoding="utf-8"), re.S)
    assert quoted, "the README no longer quotes the RuntimeError of an array-only backward"
    tl, x = namespace["tl"], namespace["x"]
    with pytest.raises(RuntimeError) as error:
        tl.autograd.grad(namespace["Sin"].apply(x).sum(), x, create_graph=True)
    assert str(error.value).startswith(" ".join(quoted[1].split()))


def _console(statement: str, namespace: dict) -> list[str]:
    """What Python's console prints for one line: an expression's repr, or its exception's last line."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        try:
            exec(compile(statement, "<console>", "single"), namespace)
        except Exception as error:
            print(traceback.format_exception_only(type(error), error)[-1], end="")
    return stdout.getvalue().splitlines()


CONSOLES = _of("pycon")


@pytest.mark.parametrize("block", CONSOLES, ids=_ids(CONSOLES))
def test_console_session_prints_what_it_shows(block, tmp_path, monkeypatch):
    """Seeded where it trains, so that it prints the same every time; run twice, in an empty folder."""
    monkeypatch.chdir(tmp_path)
    _, code, _ = block
    for _ in range(2):
        namespace = {"__name__": "__main__"}
        for statement, shown in _steps(code, ">>> "):
            assert _console(statement, namespace) == shown, statement
