"""The per-file table of tests/MUTATION.md, from mutmut's results and the equivalent mutants listed
in tests/mutation_equivalents/*.txt (one `name: why no input can tell it apart` per line).

    mutmut run                          # in the repository root (see README, "Development")
    python tests/mutation_report.py     # prints the table and the survivors, as Markdown
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
# the files of issue 10 and the kill rate each must reach (of the mutants that are not equivalent)
TARGETS = {
    "ops": 0.95,
    "tensor": 0.95,
    "losses": 0.95,
    "optim": 0.95,
    "nn": 0.95,
    "solvers": 0.95,
    "gradcheck": 0.95,
    "training": 0.90,
    "callbacks": 0.90,
    "data": 0.90,
}
LINE = re.compile(r"^\s*tinygrad_lr\.(\w+)\.(\S+): (.+)$")


def mutmut_results() -> dict[str, str]:
    """Mutant name -> status ("killed", "survived", "no tests", "timeout", ...)."""
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"], capture_output=True, text=True, check=True
    ).stdout
    results = {}
    for line in out.splitlines():
        match = LINE.match(line)
        if match:
            module, name, status = match.groups()
            results[f"tinygrad_lr.{module}.{name}"] = status.strip()
    return results


def equivalents() -> dict[str, str]:
    """Mutant name -> the reason it is equivalent."""
    found = {}
    for path in sorted((HERE / "mutation_equivalents").glob("*.txt")):
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, _, why = line.partition(": ")
                found[name.strip()] = why.strip()
    return found


def main() -> None:
    results, equivalent = mutmut_results(), equivalents()
    counts: dict[str, Counter] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    for name, status in results.items():
        module = name.split(".")[1]
        counts[module]["tried"] += 1
        if status in ("killed", "timeout"):  # a timeout is a mutant the tests stopped (an endless loop)
            counts[module]["killed"] += 1
        elif name in equivalent:
            counts[module]["equivalent"] += 1
        else:
            counts[module]["survived"] += 1
            survivors[module].append(f"{name} ({status})")
    print("| file | tried | killed | survived | equivalent | kill rate | target |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for module, target in TARGETS.items():
        c = counts[module]
        relevant = c["tried"] - c["equivalent"]
        rate = c["killed"] / relevant if relevant else 1.0
        mark = "met" if rate >= target else "missed"
        print(
            f"| `{module}.py` | {c['tried']} | {c['killed']} | {c['survived']} | {c['equivalent']} "
            f"| {rate:.1%} | {target:.0%} ({mark}) |"
        )
    for module in TARGETS:
        if survivors[module]:
            print(f"\nSurvivors in {module}.py:")
            for name in sorted(survivors[module]):
                print(f"- {name}")
    print("\n## The equivalent mutants, and why no input can tell each from the original")
    for module in TARGETS:
        names = sorted(name for name in equivalent if name.split(".")[1] == module and name in results)
        if names:
            print(f"\n### {module}.py\n")
            for name in names:
                print(f"- `{name.split('.', 2)[2]}`: {equivalent[name]}")


if __name__ == "__main__":
    main()
