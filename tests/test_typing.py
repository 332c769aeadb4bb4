"""The public API type-checks: mypy over the package and a user-style script reports 0 errors, and a
wrong hyperparameter type is flagged (signatures survive ``@schedulable``)."""

from __future__ import annotations

from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api", reason="mypy is not installed (pip install -e '.[test]')")

ROOT = Path(__file__).resolve().parents[1]
TYPING = Path(__file__).resolve().parent / "typing"


def _mypy(*targets: str | Path) -> tuple[str, int]:
    config = str(ROOT / "pyproject.toml")
    stdout, stderr, status = mypy_api.run(
        ["--config-file", config, "--cache-dir", str(ROOT / ".mypy_cache"), *map(str, targets)]
    )
    return stdout + stderr, status


@pytest.mark.slow
def test_package_and_user_script_type_check_with_zero_errors() -> None:
    out, status = _mypy(ROOT / "functional_optim", TYPING / "user_script.py")
    assert status == 0, out
    assert "Success: no issues found" in out, out


@pytest.mark.slow
def test_a_string_learning_rate_is_flagged_with_the_parameter_name() -> None:
    out, status = _mypy(TYPING / "wrong_call.py")
    assert status == 1, out
    assert 'Argument "lr" to "adamw" has incompatible type "str"' in out, out


def test_schedulable_keeps_the_signature_for_introspection() -> None:
    import inspect

    import functional_optim as fo

    params = list(inspect.signature(fo.adamw).parameters)
    assert params[:4] == ["lr", "betas", "eps", "weight_decay"]
    assert fo.adamw.__annotations__["lr"] == "Hyperparam"
