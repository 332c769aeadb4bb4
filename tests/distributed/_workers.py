"""What each rank runs in the distributed tests (module-level functions: ``spawn`` pickles them by name).

Every check returns numbers (largest differences) keyed by a readable name; the test process
asserts on them, so a failure names the algorithm, the layout and the world size.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import functional_optim as fo
from tests import _catalog

# ----------------------------------------------------------------------------- functional API


def functional_algorithms() -> dict[str, Callable[[], fo.GradientTransformation]]:
    """Every algorithm family, and the gradient filters that reduce over tensors, as transforms."""
    algos = dict(_catalog.available())
    algos.update(
        {
            "muon_divided_f64": lambda: fo.muon(lr=0.02, ns_dtype=torch.float64, distributed=True),
            "clip_by_global_norm": lambda: fo.chain(fo.clip_by_global_norm(0.5), fo.sgd(lr=0.1)),
            "clip_by_block_rms": lambda: fo.chain(fo.clip_by_block_rms(0.1), fo.sgd(lr=0.1)),
            "adaptive_grad_clip": lambda: fo.chain(fo.adaptive_grad_clip(0.01), fo.sgd(lr=0.1)),
            "centralize": lambda: fo.chain(fo.centralize(), fo.sgd(lr=0.1)),
        }
    )
    return algos


# uneven shapes on purpose: 7 rows over 4 ranks is 2,2,2,1; 3 over 4 leaves a rank empty
SHAPES = {"w": (32, 16), "u": (7, 5), "t": (16, 40), "b": (16,), "v": (3,)}


def check_functional(rank: int, world: int) -> dict[str, float]:
    """Two steps of every algorithm on Shard(0) and Shard(1) DTensors vs the unsharded run (float64)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    del rank
    mesh = init_device_mesh("cpu", (world,))
    out: dict[str, float] = {}
    for name, make in functional_algorithms().items():
        shapes = {k: s for k, s in SHAPES.items() if not name.startswith("muon") or len(s) == 2}
        gen = torch.Generator().manual_seed(0)
        params = {k: torch.randn(s, dtype=torch.float64, generator=gen) for k, s in shapes.items()}
        grads = [
            {k: torch.randn(s, dtype=torch.float64, generator=gen) for k, s in shapes.items()}
            for _ in range(2)
        ]
        opt = make()
        p_ref, s_ref = params, opt.init(params)
        for g in grads:
            u, s_ref = opt.update(g, s_ref, p_ref)
            p_ref = fo.apply_updates(p_ref, u)
        for dim in (0, 1):

            def shard(t: torch.Tensor, dim: int = dim) -> Any:
                return distribute_tensor(t, mesh, [Shard(min(dim, t.dim() - 1))])

            p_d = {k: shard(v) for k, v in params.items()}
            s_d = opt.init(p_d)
            for g in grads:
                u, s_d = opt.update({k: shard(v) for k, v in g.items()}, s_d, p_d)
                p_d = fo.apply_updates(p_d, u)
            out[f"{name} Shard({dim})"] = max(
                (p_d[k].full_tensor() - p_ref[k]).abs().max().item() for k in params
            )
    return out


# ----------------------------------------------------------------------------- distributed Muon


MUON_SHAPES = [(32, 16), (7, 5), (16, 48), (3, 9), (5, 7), (16, 48), (24, 24)]


def check_muon_divided(rank: int, world: int) -> dict[str, Any]:
    """``fo.muon(distributed=True)`` on replicated plain tensors (DDP), Shard(0), Shard(1) and
    Replicate DTensors vs the single-process ``fo.muon``: float32 parameters with NS in float32,
    float64 parameters with NS in bfloat16. Also reports this rank's share of the NS cost."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    from functional_optim.transforms.orthogonalize_distributed import assign_owners, ns_cost

    mesh = init_device_mesh("cpu", (world,))
    layouts = {"plain": None, "Shard(0)": Shard(0), "Shard(1)": Shard(1), "Replicate": Replicate()}
    out: dict[str, Any] = {}
    for dtype, ns_dtype in ((torch.float32, torch.float32), (torch.float64, torch.bfloat16)):
        gen = torch.Generator().manual_seed(1)
        params = [torch.randn(s, generator=gen).to(dtype) for s in MUON_SHAPES]
        grads = [[torch.randn(s, generator=gen).to(dtype) for s in MUON_SHAPES] for _ in range(2)]
        ref = fo.muon(lr=0.02, ns_dtype=ns_dtype)
        p_ref, s_ref = params, ref.init(params)
        for g in grads:
            u, s_ref = ref.update(g, s_ref, p_ref)
            p_ref = fo.apply_updates(p_ref, u)
        opt = fo.muon(lr=0.02, ns_dtype=ns_dtype, distributed=True)
        for lname, pl in layouts.items():

            def lay(t: torch.Tensor, pl: Any = pl) -> Any:
                return t if pl is None else distribute_tensor(t, mesh, [pl])

            p_d = [lay(p) for p in params]
            s_d = opt.init(p_d)
            for g in grads:
                u, s_d = opt.update([lay(x) for x in g], s_d, p_d)
                p_d = fo.apply_updates(p_d, u)
            full = [p if pl is None else p.full_tensor() for p in p_d]
            if pl is None:  # the updates come back in the gradients' layout
                same_layout = all(type(x) is torch.Tensor for x in u)
            else:
                same_layout = all(tuple(x.placements) == (pl,) for x in u)
            out[f"{dtype} NS {ns_dtype} {lname}"] = (
                max((a - b).abs().max().item() for a, b in zip(full, p_ref, strict=True)),
                bool(same_layout),
            )
    # reshape rules on sharded stacks: (2, 8, 6) as two 8x6 matrices, and a conv kernel flattened
    gen = torch.Generator().manual_seed(2)
    for rule, shape in (("batch", (2, 8, 6)), ("flatten", (6, 3, 2, 2))):
        params, grads = [torch.randn(shape, generator=gen)], [torch.randn(shape, generator=gen)]
        ref = fo.muon(lr=0.02, ns_dtype=torch.float32, reshape=rule)
        (expected,) = fo.apply_updates(params, ref.update(grads, ref.init(params), params)[0])
        opt = fo.muon(lr=0.02, ns_dtype=torch.float32, reshape=rule, distributed=True)
        for dim in (0, 1):
            p_d = [distribute_tensor(params[0], mesh, [Shard(dim)])]
            g_d = [distribute_tensor(grads[0], mesh, [Shard(dim)])]
            u, _ = opt.update(g_d, opt.init(p_d), p_d)
            (got,) = fo.apply_updates(p_d, u)
            out[f"torch.float32 reshape={rule} Shard({dim})"] = (
                (got.full_tensor() - expected).abs().max().item(),
                tuple(u[0].placements) == (Shard(dim),),
            )
    costs = [ns_cost(s) for s in MUON_SHAPES]
    owners = assign_owners(costs, world)
    out["share"] = sum(c for c, o in zip(costs, owners, strict=True) if o == rank) / sum(costs)
    return out


# ----------------------------------------------------------------------------- FSDP2 drop-ins


class Net(nn.Module):
    """A tiny model with uneven dimensions (7 rows over 4 ranks) and a vector smaller than the world."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(11, 16)
        self.l1 = nn.Linear(16, 32)
        self.l2 = nn.Linear(32, 7, bias=False)
        self.out = nn.Linear(7, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.l2(torch.tanh(self.l1(self.emb(x)))))


def dropins() -> dict[str, Callable[[Any], torch.optim.Optimizer]]:
    """Optimizer builders over a model (Muon sees the 2-D weights only). ``adapters.Muon`` without
    ``distributed`` (every rank gathers and orthogonalises every whole matrix) is exercised by the
    ``MuonWithAdamW`` entries of the DCP test."""
    ad = fo.adapters

    def weights(m: nn.Module) -> list[nn.Parameter]:
        return [p for p in m.parameters() if p.ndim == 2]

    return {
        "SGD": lambda m: ad.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01),
        "Adam": lambda m: ad.Adam(m.parameters(), lr=0.01, amsgrad=True),
        "AdamW": lambda m: ad.AdamW(m.parameters(), lr=0.01),
        "Adagrad": lambda m: ad.Adagrad(m.parameters(), lr=0.1),
        "RMSprop": lambda m: ad.RMSprop(m.parameters(), lr=0.01, centered=True, momentum=0.5),
        "Adafactor": lambda m: ad.Adafactor(m.parameters(), lr=0.01),
        "Muon distributed": lambda m: ad.Muon(weights(m), lr=0.02, distributed=True),
        "chain clip+adamw": lambda m: ad.FunctionalOptimizer(
            m.parameters(), fo.chain(fo.clip_by_global_norm(0.1), fo.adamw(lr=0.01))
        ),
    }


def _train(model: nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randint(0, 11, (8,), generator=gen)
        loss = model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def _sharded(model: nn.Module, mesh: Any) -> nn.Module:
    from torch.distributed.fsdp import fully_shard

    for sub in (model.emb, model.l1, model.l2, model.out):
        fully_shard(sub, mesh=mesh)
    return fully_shard(model, mesh=mesh)


def check_fsdp_dropins(rank: int, world: int) -> dict[str, float]:
    """Two steps of each drop-in on an FSDP2 (``fully_shard``) model vs the same drop-in unsharded."""
    from torch.distributed.device_mesh import init_device_mesh

    del rank
    mesh = init_device_mesh("cpu", (world,))
    out = {}
    for name, make in dropins().items():
        torch.manual_seed(0)
        ref = Net()
        model = _sharded(copy.deepcopy(ref), mesh)
        _train(ref, make(ref), 2, seed=1)
        _train(model, make(model), 2, seed=1)  # same batch on every rank: the mean gradient is ref's
        full = {k: v.full_tensor() for k, v in model.state_dict().items()}
        out[name] = max((full[k] - v).abs().max().item() for k, v in ref.state_dict().items())
    return out


def check_all(rank: int, world: int) -> dict[str, Any]:
    """One process group, every DTensor check (process start is the cost)."""
    return {
        "functional": check_functional(rank, world),
        "muon": check_muon_divided(rank, world),
        "fsdp": check_fsdp_dropins(rank, world),
    }


# ----------------------------------------------------------------------------- DCP resharding


def checkpointed() -> dict[str, Callable[[nn.Module], torch.optim.Optimizer]]:
    """The optimizers whose distributed checkpoints must reshard (saved on 2 ranks, loaded on 1 and 4).

    ``MuonWithAdamW`` and ``fo.muon_with_adamw``: the Muon half gathers each sharded matrix and
    orthogonalises it whole (as torch), so its numbers do not depend on the world size; the AdamW
    half (embedding, output head, biases) is elementwise on the shards."""
    ad = fo.adapters

    def chain(lr: float, weight_decay: float) -> fo.GradientTransformation:
        return fo.chain(fo.clip_by_global_norm(0.1), fo.adamw(lr=lr, weight_decay=weight_decay))

    return {
        "AdamW": lambda m: ad.AdamW(m.parameters(), lr=0.01, weight_decay=0.1),
        "SGD momentum": lambda m: ad.SGD(m.parameters(), lr=0.1, momentum=0.9, nesterov=True),
        "Adafactor": lambda m: ad.Adafactor(m.parameters(), lr=0.01),
        "Muon distributed": lambda m: ad.Muon(
            [p for p in m.parameters() if p.ndim == 2], lr=0.02, distributed=True
        ),
        "FunctionalOptimizer chain": lambda m: ad.FunctionalOptimizer(
            m.parameters(), chain, lr=0.01, weight_decay=0.1
        ),
        "MuonWithAdamW": lambda m: ad.MuonWithAdamW(
            m.named_parameters(), model=m, muon_lr=0.02, adamw_lr=0.01
        ),
        "FunctionalOptimizer muon_with_adamw": lambda m: ad.FunctionalOptimizer(
            m.parameters(), _muon_with_adamw_of(m), muon_lr=0.02, adamw_lr=0.01
        ),
    }


def _muon_with_adamw_of(model: nn.Module) -> Callable[..., fo.GradientTransformation]:
    """A factory of ``fo.muon_with_adamw`` for ``model`` whose hyperparameters (the ones kept in
    ``param_groups`` and checkpointed) are the two learning rates; the model is closed over."""

    def factory(muon_lr: float = 0.02, adamw_lr: float = 3e-4) -> fo.GradientTransformation:
        return fo.muon_with_adamw(model=model, muon_lr=muon_lr, adamw_lr=adamw_lr)

    return factory


def _full_params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.full_tensor() for k, v in model.state_dict().items()}


def dcp_save(rank: int, world: int, root: str) -> dict[str, dict[str, torch.Tensor]]:
    """Train 2 steps, save model + optimizer with DCP, train 2 more: the numbers a resume must give."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh("cpu", (world,))
    out = {}
    for i, (name, make) in enumerate(checkpointed().items()):
        torch.manual_seed(0)
        model = _sharded(Net(), mesh)
        opt = make(model)
        _train(model, opt, 2, seed=1)
        msd, osd = get_state_dict(model, opt)
        dcp.save({"model": msd, "optim": osd}, checkpoint_id=f"{root}/{i}")
        _train(model, opt, 2, seed=2)
        out[name] = _full_params(model)
    return out if rank == 0 else {}


def dcp_resume(
    rank: int, world: int, root: str, skip: tuple[str, ...] = ()
) -> dict[str, dict[str, torch.Tensor]]:
    """Load the 2-rank checkpoint on ``world`` ranks (fresh model and optimizer) and train 2 steps."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh("cpu", (world,))
    out = {}
    for i, (name, make) in enumerate(checkpointed().items()):
        if name in skip:
            continue
        torch.manual_seed(123)  # a different initialisation: everything must come from the checkpoint
        model = _sharded(Net(), mesh)
        opt = make(model)
        msd, osd = get_state_dict(model, opt)
        sd = {"model": msd, "optim": osd}
        dcp.load(sd, checkpoint_id=f"{root}/{i}")
        set_state_dict(model, opt, model_state_dict=sd["model"], optim_state_dict=sd["optim"])
        _train(model, opt, 2, seed=2)
        out[name] = _full_params(model)
    return out if rank == 0 else {}


def fail_on_every_rank(rank: int, world: int) -> None:
    """Raises on every rank, rank 0 first (the harness must report them all)."""
    if rank > 0:
        import time

        time.sleep(0.5)
    raise ValueError(f"rank {rank} of {world} fails")
