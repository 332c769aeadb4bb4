"""How fast can an eager, per-tensor optimizer step in Python be? The floor under the adapter.

Run::

    python benchmarks/eager_floor.py                        # sgd, adagrad, adam on 32 x 512² and 100 x 10k
    python benchmarks/eager_floor.py --sets large --repeats 21 --json out.json
    python benchmarks/eager_floor.py --check-fused-sgd     # torch's fused SGD kernel against its for-loop
    python benchmarks/eager_floor.py --breakdown           # where the adapter's step goes on 32 x 512²

On a CPU, ``torch.optim``'s for-loop (``foreach=False``) and the adapter's eager step run the very
same kernels (a ``torch.profiler`` comparison gives equal self times, see ``docs/performance.md``);
what differs is the Python that runs between them. This benchmark measures, interleaved in one
run, per algorithm:

* ``torch_forloop``: ``torch.optim.<Name>(..., foreach=False)``;
* ``kernels_only``: the calls torch's for-loop makes for each tensor, written out as straight
  Python over the optimizer's own tensors, with no optimizer bookkeeping (no state dict, no
  ``_init_group``, no hooks). Checked here to give torch's numbers bit for bit. No step driven by
  Python tensor by tensor can be faster than this;
* ``replay``: the same calls made by a small interpreter from a list of instructions built once per
  step (callable, tensor slots, constants): what an adapter that ran an algorithm's Python once per
  step and then replayed its kernel calls tensor by tensor could at best achieve;
* ``adapter``: ``functional_optim.adapters.<Name>(...).step()``, the eager drop-in (its rule's Python
  runs once per chunk of about 1 MB, here one chunk per 512² tensor).

Ratios are to ``torch_forloop`` (medians of interleaved repeats; the spread is the 25th-75th
percentile of the per-repeat ratios). The machine is printed with the results: the gaps are
Python run between kernels that stream the caches out, so they depend on the CPU's caches.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import machine_info, make_tensors, size_shapes, time_paths

import functional_optim as fo

LR = 1e-3
MOMENTUM = 0.9
BETAS = (0.9, 0.999)
EPS_ADAM = 1e-8
EPS_ADAGRAD = 1e-10


class Instruction(NamedTuple):
    """One call of a replayed step: ``fn(*args)`` where ``args[k]`` is ``env[slots[k]]`` for an
    integer slot and ``constants[k]`` otherwise; a result is stored in ``env[out]``."""

    fn: Callable[..., Any]
    slots: tuple[int | None, ...]
    constants: tuple[Any, ...]
    out: int | None = None


def replay(program: list[Instruction], envs: Iterable[list[Any]]) -> None:
    """Run ``program`` once per tensor, ``envs[i]`` holding that tensor's slots."""
    for env in envs:
        for fn, slots, constants, out in program:
            result = fn(*[c if s is None else env[s] for s, c in zip(slots, constants, strict=True)])
            if out is not None:
                env[out] = result


class Algorithm(NamedTuple):
    """An algorithm's torch optimizer, its state tensors, and its kernel calls two ways."""

    torch_optimizer: Callable[[list[torch.Tensor]], torch.optim.Optimizer]
    adapter: Callable[[list[torch.Tensor]], torch.optim.Optimizer]
    state: Callable[[torch.Tensor], list[torch.Tensor]]
    straight: Callable[[list[torch.Tensor], list[torch.Tensor], list[list[torch.Tensor]]], None]
    program: Callable[[list[list[torch.Tensor]]], list[Instruction]]


# ---------------------------------------------------------------------------- SGD with momentum
# slots: 0 param, 1 grad, 2 momentum buffer


def _sgd_straight(params, grads, states):
    for p, g, (buf,) in zip(params, grads, states, strict=True):
        buf.mul_(MOMENTUM).add_(g, alpha=1.0)
        p.add_(buf, alpha=-LR)


def _sgd_program(states):
    del states
    return [
        Instruction(torch.Tensor.mul_, (2, None), (None, MOMENTUM)),
        Instruction(functools.partial(torch.Tensor.add_, alpha=1.0), (2, 1), (None, None)),
        Instruction(functools.partial(torch.Tensor.add_, alpha=-LR), (0, 2), (None, None)),
    ]


# ---------------------------------------------------------------------------- Adagrad
# slots: 0 param, 1 grad, 2 step, 3 sum, 4 std (temporary)


def _adagrad_straight(params, grads, states):
    for p, g, (step_t, state_sum) in zip(params, grads, states, strict=True):
        step_t += 1
        clr = LR / (1 + (step_t.item() - 1) * 0.0)
        state_sum.addcmul_(g, g, value=1)
        std = state_sum.sqrt().add_(EPS_ADAGRAD)
        p.addcdiv_(g, std, value=-clr)


def _adagrad_program(states):
    step = states[0][0].item() + 1  # every counter holds the same value here
    clr = LR / (1 + (step - 1) * 0.0)
    return [
        Instruction(torch.Tensor.add_, (2, None), (None, 1)),
        Instruction(torch.Tensor.addcmul_, (3, 1, 1), (None, None, None)),
        Instruction(torch.Tensor.sqrt, (3,), (None,), out=4),
        Instruction(torch.Tensor.add_, (4, None), (None, EPS_ADAGRAD)),
        Instruction(functools.partial(torch.Tensor.addcdiv_, value=-clr), (0, 1, 4), (None, None, None)),
    ]


# ---------------------------------------------------------------------------- Adam
# slots: 0 param, 1 grad, 2 step, 3 exp_avg, 4 exp_avg_sq, 5 denom (temporary)


def _adam_coefficients(step: float) -> tuple[float, float]:
    beta1, beta2 = BETAS
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    return LR / bias_correction1, bias_correction2**0.5


def _adam_straight(params, grads, states):
    beta1, beta2 = BETAS
    for p, g, (step_t, exp_avg, exp_avg_sq) in zip(params, grads, states, strict=True):
        step_t += 1
        exp_avg.lerp_(g, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        step_size, bias_correction2_sqrt = _adam_coefficients(step_t.item())
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(EPS_ADAM)
        p.addcdiv_(exp_avg, denom, value=-step_size)


def _adam_program(states):
    beta1, beta2 = BETAS
    step_size, bias_correction2_sqrt = _adam_coefficients(states[0][0].item() + 1)
    return [
        Instruction(torch.Tensor.add_, (2, None), (None, 1)),
        Instruction(torch.Tensor.lerp_, (3, 1, None), (None, None, 1 - beta1)),
        Instruction(torch.Tensor.mul_, (4, None), (None, beta2)),
        Instruction(functools.partial(torch.Tensor.addcmul_, value=1 - beta2), (4, 1, 1), (None, None, None)),
        Instruction(torch.Tensor.sqrt, (4,), (None,), out=5),
        Instruction(torch.Tensor.div_, (5, None), (None, bias_correction2_sqrt)),
        Instruction(torch.Tensor.add_, (5, None), (None, EPS_ADAM)),
        Instruction(
            functools.partial(torch.Tensor.addcdiv_, value=-step_size), (0, 3, 5), (None, None, None)
        ),
    ]


def _step_counter() -> torch.Tensor:
    """A 0-dim float32 step count, as torch.optim keeps it."""
    return torch.zeros((), dtype=torch.float32)


ALGORITHMS: dict[str, Algorithm] = {
    "sgd": Algorithm(
        lambda ps: torch.optim.SGD(ps, lr=LR, momentum=MOMENTUM, foreach=False),
        lambda ps: fo.adapters.SGD(ps, lr=LR, momentum=MOMENTUM),
        lambda p: [torch.zeros_like(p)],
        _sgd_straight,
        _sgd_program,
    ),
    "adagrad": Algorithm(
        lambda ps: torch.optim.Adagrad(ps, lr=LR, foreach=False),
        lambda ps: fo.adapters.Adagrad(ps, lr=LR),
        lambda p: [_step_counter(), torch.zeros_like(p)],
        _adagrad_straight,
        _adagrad_program,
    ),
    "adam": Algorithm(
        lambda ps: torch.optim.Adam(ps, lr=LR, foreach=False),
        lambda ps: fo.adapters.Adam(ps, lr=LR),
        lambda p: [_step_counter(), torch.zeros_like(p), torch.zeros_like(p)],
        _adam_straight,
        _adam_program,
    ),
}


def _with_grads(base: list[torch.Tensor], grads: list[torch.Tensor]) -> list[torch.Tensor]:
    params = [b.clone().requires_grad_(True) for b in base]
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    return params


def check_straight_matches_torch(
    algo: Algorithm, base: list[torch.Tensor], grads: list[torch.Tensor]
) -> None:
    """From the parameters and state of torch's first step (the state as torch creates it, e.g.
    SGD's buffer seeded with the gradient), ``kernels_only`` and ``replay`` take three more steps
    beside torch's for-loop and must give its parameters bit for bit."""
    reference = _with_grads(base, grads)
    opt = algo.torch_optimizer(reference)
    with torch.no_grad():
        opt.step()  # state created as torch creates it (SGD: the buffer is the gradient)
        mine = [p.detach().clone() for p in reference]
        mine_states = [[t.clone() for t in _torch_state(opt, p)] for p in reference]
        replayed = [p.clone() for p in mine]
        replayed_states = [[t.clone() for t in st] for st in mine_states]
        for _ in range(3):
            opt.step()
            algo.straight(mine, grads, mine_states)
            replay(algo.program(replayed_states), _envs(replayed, grads, replayed_states))
    for name, ps in (("kernels_only", mine), ("replay", replayed)):
        if not all(torch.equal(a, b) for a, b in zip(ps, reference, strict=True)):
            raise AssertionError(f"{name} does not reproduce torch's for-loop bit for bit")


def _torch_state(opt: torch.optim.Optimizer, p: torch.Tensor) -> list[torch.Tensor]:
    st = opt.state[p]
    order = ("step", "sum", "exp_avg", "exp_avg_sq", "momentum_buffer")
    return [st[k] for k in order if k in st]


def _envs(
    params: list[torch.Tensor], grads: list[torch.Tensor], states: list[list[torch.Tensor]]
) -> Iterator[list[Any]]:
    """One tensor's slots at a time: its temporaries are freed before the next tensor's are made,
    so the allocator hands the same memory back (as torch's loop, whose temporaries die with each
    iteration; holding all of them to the end of the step costs fresh pages for every tensor)."""
    for p, g, st in zip(params, grads, states, strict=True):
        yield [p, g, *st, None]


def build_paths(
    algo: Algorithm, base: list[torch.Tensor], grads: list[torch.Tensor]
) -> dict[str, Callable[[], None]]:
    torch_params = _with_grads(base, grads)
    torch_opt = algo.torch_optimizer(torch_params)
    adapter = algo.adapter(_with_grads(base, grads))
    straight_params = [b.clone() for b in base]
    straight_states = [algo.state(p) for p in straight_params]
    replay_params = [b.clone() for b in base]
    replay_states = [algo.state(p) for p in replay_params]

    def straight() -> None:
        algo.straight(straight_params, grads, straight_states)

    def replayed() -> None:
        replay(algo.program(replay_states), _envs(replay_params, grads, replay_states))

    return {
        "torch_forloop": torch_opt.step,
        "kernels_only": straight,
        "replay": replayed,
        "adapter": adapter.step,
    }


def fused_sgd_differences() -> tuple[int, int]:
    """In how many option combinations torch's fused SGD kernel (``fused=True``) ends with other
    float32 parameters than its for-loop (``foreach=False``) after four steps; of how many.

    Why the eager SGD step does not run torch's fused kernel although it is faster: the drop-in
    must give the for-loop's numbers.
    """
    differing = total = 0
    base = [torch.randn(n, generator=torch.Generator().manual_seed(n)) for n in (1, 7, 33, 1000, 4099)]
    options = itertools.product((0.0, 0.9, 0.5), (0.0, 0.1), (0.0, 1e-2, 0.3), (False, True), (False, True))
    for momentum, dampening, weight_decay, nesterov, maximize in options:
        if nesterov and (momentum == 0 or dampening != 0):
            continue
        for lr in (1e-3, 0.1, 3.7):
            kw = dict(
                lr=lr,
                momentum=momentum,
                dampening=dampening,
                weight_decay=weight_decay,
                nesterov=nesterov,
                maximize=maximize,
            )
            finals = []
            for fused in (False, True):
                params = [b.clone().requires_grad_(True) for b in base]
                opt = torch.optim.SGD(params, foreach=None if fused else False, fused=fused or None, **kw)
                gen = torch.Generator().manual_seed(1)
                for _ in range(4):
                    for p in params:
                        p.grad = 10 * torch.randn(p.shape, generator=gen)
                    opt.step()
                finals.append(params)
            total += 1
            differing += not all(torch.equal(a, b) for a, b in zip(*finals, strict=True))
    return differing, total


def breakdown(name: str, steps: int = 30) -> dict[str, float]:
    """Milliseconds per step of the adapter on 32 x 512² (one chunk per tensor): the whole step,
    the commit, the replayed chunks and the recorded one (`functional_optim._replay`), timed with
    ``perf_counter`` around each."""
    from functional_optim import _replay, fused

    algo = ALGORITHMS[name]
    shapes = size_shapes("large", 12)
    opt = algo.adapter(_with_grads(make_tensors(shapes, "cpu", seed=0), make_tensors(shapes, "cpu", seed=1)))
    for _ in range(3):
        opt.step()
    spent = {"commit": 0.0, "replayed": 0.0, "recorded": 0.0}

    def timed(key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - start

        return run

    originals = (fused.commit, _replay.Replays.replay, _replay.Replays.step)
    fused.commit = timed("commit", fused.commit)
    _replay.Replays.replay = timed("replayed", _replay.Replays.replay)  # type: ignore[method-assign]
    _replay.Replays.step = timed("recorded", _replay.Replays.step)  # type: ignore[method-assign]
    try:
        start = time.perf_counter()
        for _ in range(steps):
            opt.step()
        total = time.perf_counter() - start
    finally:
        fused.commit, _replay.Replays.replay, _replay.Replays.step = originals  # type: ignore[method-assign]
    out = {"step": total, **spent}
    return {k: 1e3 * v / steps for k, v in out.items()}


def _cpu_flags() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return "unknown"
    flags = next((line.split(":", 1)[1].split() for line in out.splitlines() if line.startswith("Flags")), [])
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    caches = [
        line.split(":", 1)[1].strip()
        for line in out.splitlines()
        if line.startswith(("L2 cache", "L3 cache"))
    ]
    return " ".join(f for f in wanted if f in flags) + ("; L2/L3: " + ", ".join(caches) if caches else "")


def _cell(path: str, r: dict[str, Any]) -> str:
    low, high = r["spread"]
    return f"{path} {r['ms_per_step']:.2f} ms {r['ratio']:.3f}x ({low:.2f}-{high:.2f})"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", default="sgd,adagrad,adam")
    parser.add_argument("--sets", default="large,small", help="large: 32 x 512²; small: 100 x 10k")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--check-fused-sgd", action="store_true", help="only count where torch's fused SGD differs"
    )
    parser.add_argument(
        "--breakdown", action="store_true", help="only time the parts of the adapter's step on 32 x 512²"
    )
    args = parser.parse_args(argv)
    if args.breakdown:
        out = {name: breakdown(name) for name in args.algos.split(",")}
        for name, ms in out.items():
            print(f"{name:8s} " + "  ".join(f"{k} {v:.2f} ms" for k, v in ms.items()))
        return out
    if args.check_fused_sgd:
        differing, total = fused_sgd_differences()
        print(f"torch's fused SGD kernel differs from its for-loop in {differing} of {total} option sets")
        return {"fused_sgd_differing": differing, "option_sets": total}
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine_info("cpu")
    info["cpu_flags"] = _cpu_flags()
    print(
        f"# {info.get('cpu_model')} ({info['cpu_count']} cores; {info['cpu_flags']}), "
        f"{info['torch_threads']} torch thread(s), torch {info['torch']}, "
        f"load average {info.get('load_average_at_start')}"
    )
    results: list[dict[str, Any]] = []
    for size in args.sets.split(","):
        shapes = size_shapes(size, 12)
        for name in args.algos.split(","):
            algo = ALGORITHMS[name]
            base, grads = make_tensors(shapes, "cpu", seed=0), make_tensors(shapes, "cpu", seed=1)
            check_straight_matches_torch(algo, base, grads)
            paths = build_paths(algo, base, grads)
            with torch.no_grad():
                times = time_paths(paths, args.steps, args.repeats, warmup=2, device="cpu")
            ref = times["torch_forloop"]
            row: dict[str, Any] = {"set": size, "algorithm": name}
            for path, ts in times.items():
                per_repeat = sorted(t / r for t, r in zip(ts, ref, strict=True))
                q = statistics.quantiles(per_repeat, n=4) if len(per_repeat) > 1 else [per_repeat[0]] * 3
                row[path] = {
                    "ms_per_step": 1e3 * statistics.median(ts),
                    "ratio": statistics.median(ts) / statistics.median(ref),
                    "spread": (q[0], q[2]),
                }
            results.append(row)
            cells = "  ".join(_cell(p, row[p]) for p in paths)
            print(f"{size:5s} {name:8s} {cells}", flush=True)
    out = {"machine": info, "args": vars(args), "results": results}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")
    return out


if __name__ == "__main__":
    main()
