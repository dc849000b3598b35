"""Running this checkout's code in a child Python process, as the command-line, example and
import tests do."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child_env(drop: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    """The environment for a child process: this one's, less `drop`, plus `extra`, with the checkout
    first on PYTHONPATH so that the child imports the code under test (not an installed copy).

    Under mutmut the checkout is mutmut's copy (mutants/), and the child inherits the mutant under
    test through MUTANT_UNDER_TEST, so these tests can kill mutants too. mutmut's first pass,
    "stats", records in-process which tests reach which functions: a child cannot report back, and
    would look for mutmut's settings in its own working directory, so there it runs plain code.
    """
    env = {key: value for key, value in os.environ.items() if key not in drop}
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    if env.get("MUTANT_UNDER_TEST") == "stats":
        env["MUTANT_UNDER_TEST"] = ""
    return env
