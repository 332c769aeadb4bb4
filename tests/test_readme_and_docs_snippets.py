"""Every Python snippet of the README, the docs home page and the documentation guides runs as written.

The blocks of one file run in order in one namespace (as a reader pastes them one after another).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "index.md", *sorted((ROOT / "docs" / "guides").glob("*.md"))]


def python_blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text(encoding="utf-8"))


def test_the_readme_keeps_the_two_commands_verbatim() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install torch==2.13.0 -e '.[demo]' && python examples/demo.py" in text
    test_command = (
        "pip install torch==2.13.0 -e '.[test,reference]' && pip install --no-deps kron-torch==0.3.3 "
        "&& python -m pytest -n 2"
    )
    assert test_command in text
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci


def test_block_extraction_finds_the_readme_snippets() -> None:
    blocks = python_blocks(ROOT / "README.md")
    assert len(blocks) >= 3
    assert any("meta_loss" in b for b in blocks)


@pytest.mark.slow
@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_snippets_run(path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # snippets that save checkpoints write here
    namespace: dict = {"__name__": "__snippet__"}
    for i, block in enumerate(python_blocks(path)):
        code = compile(block, f"{path.name}[python block {i}]", "exec")
        exec(code, namespace)
