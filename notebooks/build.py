"""Execute the notebook sources (jupytext percent-format ``notebooks/*.py``) into ``.ipynb`` with outputs.

Run: ``python notebooks/build.py [name ...]`` from any directory. The ``.py`` files are the
reviewable source of truth; the executed ``.ipynb`` next to them are generated (their figures show
on the repository page and in the documentation site). CI executes the sources and checks their
figures (tests/test_examples_and_notebooks.py).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import jupytext
import nbclient
import nbformat

HERE = Path(__file__).resolve().parent
SOURCES = sorted(p for p in HERE.glob("*.py") if p.name != "build.py")


def execute(source: Path, cwd: Path | None = None) -> tuple[nbformat.NotebookNode, float]:
    """The executed notebook of ``source`` and its run time in seconds."""
    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd or source.parent)}}
    )
    # the kernel imports functional_optim (and finds examples/, benchmarks/) from this checkout,
    # whatever is installed and whatever the working directory
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), previous]))
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        if previous is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = previous
    return nb, time.perf_counter() - start


def figures(nb: nbformat.NotebookNode) -> int:
    """The number of image outputs (``image/png``) in ``nb``."""
    return sum(
        "image/png" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )


def main(names: list[str]) -> None:
    for source in SOURCES:
        if names and source.stem not in names:
            continue
        nb, seconds = execute(source)
        target = source.with_suffix(".ipynb")
        nbformat.write(nb, target)
        print(f"{target.name}: {seconds:.1f} s, {figures(nb)} figure(s)")


if __name__ == "__main__":
    main(sys.argv[1:])
