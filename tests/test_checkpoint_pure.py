"""The pure API's state is checkpointed the way torch users checkpoint: ``torch.save(state)``,
then in a new process ``torch.load(path)`` with the default ``weights_only=True`` and the run
continues bit-identically (every algorithm, schedules, multi_steps, apply_if_finite, averaging;
and a drop-in optimizer whose hyperparameters are schedules)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import optree
import pytest
import torch

import functional_optim as fo
from functional_optim import _checkpoint
from tests._checkpoint_cases import CASES, STEPS, adapter, adapter_steps, continue_all, initial_params, step

ROOT = Path(__file__).resolve().parents[1]


def _bitwise_equal(a, b) -> bool:
    la, sa = optree.tree_flatten(a, none_is_leaf=True)
    lb, sb = optree.tree_flatten(b, none_is_leaf=True)
    if sa != sb:
        return False
    for x, y in zip(la, lb, strict=True):
        if isinstance(x, torch.Tensor):
            if not isinstance(y, torch.Tensor) or x.dtype != y.dtype or x.layout != y.layout:
                return False
            xd, yd = (x.to_dense(), y.to_dense()) if x.is_sparse else (x, y)
            if xd.shape != yd.shape or not torch.equal(torch.nan_to_num(xd), torch.nan_to_num(yd)):
                return False
        elif x != y and not (x != x and y != y):  # NaN == NaN here
            return False
    return True


def test_torch_load_defaults_to_weights_only():
    # the whole point: users call torch.load(path) and get the safe unpickler
    assert inspect.signature(torch.load).parameters["weights_only"].default in (None, True)


@pytest.mark.slow
def test_every_state_saved_loads_in_a_new_process_with_weights_only_and_continues_bitwise(tmp_path):
    saved = {}
    for name, make in CASES.items():
        opt, params = make(), initial_params(name)
        state = opt.init(params)
        for k in range(STEPS):
            params, state = step(name, opt, params, state, k)
        saved[name] = (params, state)
    load, out = tmp_path / "state.pt", tmp_path / "continued.pt"
    torch.save(saved, load)
    expected = continue_all(saved, STEPS)
    # a drop-in optimizer with schedules as hyperparameters: its state_dict holds the schedules
    model, opt = adapter()
    adapter_steps(model, opt, 0)
    adapter_load, adapter_out = tmp_path / "adapter.pt", tmp_path / "adapter_continued.pt"
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, adapter_load)
    adapter_steps(model, opt, STEPS)

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests._checkpoint_cases",
            str(load),
            str(out),
            str(adapter_load),
            str(adapter_out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.load(out)
    assert set(got) == set(CASES)
    for name in CASES:
        assert _bitwise_equal(got[name], expected[name]), name
        assert not _bitwise_equal(got[name][0], saved[name][0]), f"{name}: the continued run did not move"
    assert _bitwise_equal(torch.load(adapter_out), model.state_dict())


def test_every_namedtuple_and_schedule_class_of_the_package_is_a_safe_global():
    import importlib
    import pkgutil

    for mod in pkgutil.walk_packages(fo.__path__, "functional_optim."):
        importlib.import_module(mod.name)
    _checkpoint.register_all()  # classes of modules that ``import functional_optim`` did not load
    safe = set(torch.serialization.get_safe_globals())
    missing = []
    for mod_name, module in list(sys.modules.items()):
        if not mod_name.startswith("functional_optim"):
            continue
        for obj in vars(module).values():
            if not isinstance(obj, type) or obj.__module__ != mod_name:
                continue
            is_state = issubclass(obj, tuple) and hasattr(obj, "_fields")
            if (is_state or issubclass(obj, fo.schedules.ScheduleObject)) and obj not in safe:
                missing.append(f"{mod_name}.{obj.__qualname__}")
    assert not missing, missing


@pytest.mark.slow
def test_import_of_the_package_registers_every_module_class_without_walking():
    # a fresh interpreter: ``import functional_optim`` alone must cover every module of the
    # package (new modules added by anyone are imported by their subpackage's __init__)
    code = (
        "import importlib, pkgutil, torch, functional_optim as fo\n"
        "before = set(torch.serialization.get_safe_globals())\n"
        "for m in pkgutil.walk_packages(fo.__path__, 'functional_optim.'):\n"
        "    importlib.import_module(m.name)\n"
        "new = fo._checkpoint.register_all()\n"
        "print([c.__qualname__ for c in new if c not in before])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]", f"classes only registered after importing their module: {proc.stdout}"
