"""The README demo runs; every notebook source (notebooks/*.py, jupytext) executes from any directory and
draws its figures; the committed executed copies (notebooks/*.ipynb) are up to date."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# the figures (image outputs) each notebook must draw
FIGURES = {"differentiable": 4, "muon_vs_adamw": 1, "quickstart": 1, "schedules": 2, "zoo": 2}


def test_demo_trains_and_reports_the_final_loss():
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--steps", "300"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        cwd=ROOT,
    )
    assert "final loss" in out.stdout
    loss = float(out.stdout.split("final loss")[1].split()[0])
    assert loss < 0.6, out.stdout  # chance level is ln 2 = 0.69


@pytest.mark.slow
@pytest.mark.parametrize("stem", sorted(FIGURES))
def test_notebook_source_executes_from_another_directory_and_draws_its_figures(stem, tmp_path):
    pytest.importorskip("jupytext")
    pytest.importorskip("nbclient")
    sys.path.insert(0, str(ROOT / "notebooks"))
    try:
        import build
    finally:
        sys.path.pop(0)
    nb, seconds = build.execute(ROOT / "notebooks" / f"{stem}.py", cwd=tmp_path)
    print(f"{stem}: {seconds:.1f} s, {build.figures(nb)} figure(s)")
    assert build.figures(nb) == FIGURES[stem]


def test_every_notebook_has_a_source_and_the_committed_copy_matches_it():
    jupytext = pytest.importorskip("jupytext")
    nbformat = pytest.importorskip("nbformat")
    sources = {p.stem for p in (ROOT / "notebooks").glob("*.py") if p.name != "build.py"}
    assert sources == set(FIGURES) == {p.stem for p in NOTEBOOKS}
    for stem in sources:
        source = jupytext.read(ROOT / "notebooks" / f"{stem}.py")
        committed = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
        assert [c.source for c in committed.cells] == [c.source for c in source.cells], (
            f"notebooks/{stem}.ipynb is out of date: run python notebooks/build.py {stem}"
        )
        images = sum("image/png" in o.get("data", {}) for c in committed.cells for o in c.get("outputs", []))
        assert images == FIGURES[stem], f"notebooks/{stem}.ipynb is committed without its figures"
