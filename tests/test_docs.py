"""The documentation site builds with warnings as errors and documents every public name."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# API page -> the namespace whose public names it documents
GROUPS = {
    "optimizers": "functional_optim.optimizers",
    "transforms": "functional_optim.transforms",
    "combinators": "functional_optim.combinators",
    "schedules": "functional_optim.schedules",
    "averaging": "functional_optim.averaging",
    "adapters": "functional_optim.adapters",
    "differentiable": ("functional_optim.differentiable", "functional_optim.compiled"),
}


def _public(modules: str | tuple[str, ...]) -> set[str]:
    names: set[str] = set()
    for mod in (modules,) if isinstance(modules, str) else modules:
        names |= set(importlib.import_module(mod).__all__)
    return names


@pytest.mark.parametrize("page", sorted(GROUPS))
def test_every_public_name_has_an_entry_on_its_api_page(page: str) -> None:
    text = (ROOT / "docs" / "api" / f"{page}.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^::: [\w.]+\.(\w+)$", text, re.M))
    missing = _public(GROUPS[page]) - documented
    assert not missing, f"docs/api/{page}.md lacks ::: entries for {sorted(missing)}"


@pytest.mark.slow
def test_the_site_builds_strictly_with_every_name_and_every_notebook_figure(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="the docs tools are in the test extra")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    assert "WARNING" not in log, log
    pages = [p for p in site.rglob("index.html")]
    assert len(pages) >= 20, sorted(str(p.relative_to(site)) for p in pages)
    for page, modules in GROUPS.items():
        html = (site / "api" / page / "index.html").read_text(encoding="utf-8")
        anchors = set(re.findall(r'id="functional_optim\.[\w.]*?\.?(\w+)"', html))
        missing = _public(modules) - anchors
        assert not missing, f"api/{page} has no rendered entry for {sorted(missing)}"
    for stem, figures in {"quickstart": 1, "schedules": 2, "differentiable": 4, "muon_vs_adamw": 1}.items():
        html = (site / "notebooks" / stem / "index.html").read_text(encoding="utf-8")
        assert html.count("data:image/png") >= figures, f"notebooks/{stem} is rendered without its figures"


_RST = re.compile(r":(?:math|func|class|meth|mod|attr|data|obj|exc):`|^\s*\.\. (?:math|code-block)::", re.M)


def test_docstrings_use_markdown_not_rst() -> None:
    """mkdocstrings renders docstrings as markdown: RST roles and directives would show as raw text
    (maths as ``$...$``/``$$...$$``, links as ``[`name`][]``; see CONTRIBUTING.md)."""
    found = []
    for path in sorted((ROOT / "functional_optim").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            # docstrings of modules, classes, functions and (as griffe reads them) attributes
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                doc = node.value.value if isinstance(node.value.value, str) else ""
                found += [
                    f"{path.relative_to(ROOT)}:{node.lineno}: {m.group(0).strip()}"
                    for m in _RST.finditer(doc)
                ]
    assert not found, (
        "RST markup in docstrings (tools/docstrings_rst_to_markdown.py converts it):\n" + "\n".join(found)
    )
