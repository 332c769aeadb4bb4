"""``orthogonalize_distributed``: Muon's Newton–Schulz divided across the ranks of a process group.

Without it every rank orthogonalises every matrix: under DDP each rank holds the whole (all-reduced)
gradient and repeats the same Newton–Schulz (NS) work; under FSDP2 a DTensor matmul gathers the
whole matrix on every rank. Here each matrix has one *owner* rank, chosen by cost
(``batch·m·n·min(m, n)``, the flops of NS) so that the ranks get equal work; only the owner runs NS
on it, and the results are exchanged:

* replicated leaves (plain tensors under DDP, ``Replicate()`` DTensors): the owner already has the
  whole gradient; results are shared with one ``all_gather`` per dtype;
* sharded leaves (``Shard(d)`` DTensors on a 1-D mesh: FSDP2's ``Shard(0)``, tensor-parallel
  ``Shard(1)``): an ``all_to_all`` sends every rank's shard of a matrix to its owner, which
  assembles the whole matrix (whole-matrix semantics, as ``torch.optim.Muon``), orthogonalises it
  and sends each rank its shard back with a second ``all_to_all``.

NS itself is the public [`orthogonalize`][] run on
plain, whole matrices, so every owned matrix gets exactly the single-process computation (up to
the batching of same-shape matrices into one ``bmm``, which can change the last bit). Data travel
in the NS dtype when it is narrower than the gradient's (the cast happens once either way, so the
numbers are unchanged) and in the gradient's dtype otherwise.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor

if TYPE_CHECKING:
    from torch.distributed.tensor import DTensor

from functional_optim import tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import EmptyState, GradientTransformation, Params, Updates
from functional_optim.transforms.orthogonalize import (
    ReshapeRule,
    Triple,
    default_ns_dtype,
    matrix_view_shape,
    orthogonalize,
)

__all__ = ["orthogonalize_distributed"]


def ns_cost(shape: torch.Size | Sequence[int], reshape: ReshapeRule = None) -> int:
    """The relative cost of Newton–Schulz on a parameter of ``shape``: ``batch·m·n·min(m, n)``."""
    bsz, m, n = matrix_view_shape(shape, reshape)
    return bsz * m * n * min(m, n)


def assign_owners(costs: Sequence[float], world_size: int) -> list[int]:
    """An owner rank per item, balancing the summed cost per rank (longest-processing-time first).

    Items are taken by decreasing cost (ties: lower index first) and each goes to the rank with the
    least work so far (ties: lower rank). Deterministic, so every rank computes the same assignment
    without communicating. The largest load is at most 4/3 of the optimum (Graham, 1969).

    Example:
      >>> from functional_optim.transforms.orthogonalize_distributed import assign_owners
      >>> assign_owners([8, 1, 4, 4, 2], 2)
      [0, 1, 1, 1, 0]
    """
    if world_size < 1:
        raise ValueError(f"assign_owners: world_size must be >= 1, got {world_size}")
    order = sorted(range(len(costs)), key=lambda i: (-costs[i], i))
    loads = [(0.0, r) for r in range(world_size)]
    owners = [0] * len(costs)
    for i in order:
        load, rank = heapq.heappop(loads)
        owners[i] = rank
        heapq.heappush(loads, (load + costs[i], rank))
    return owners


def _chunk_sizes(n: int, world: int) -> list[int]:
    """Sizes of the ``Shard`` pieces of a dimension of size ``n`` (``torch.chunk``'s rule)."""
    c = math.ceil(n / world) if n else 0
    return [max(0, min(c, n - r * c)) for r in range(world)]


def _placement_kind(g: Tensor) -> tuple[str, int]:
    """``("plain", -1)``, ``("replicate", -1)``, ``("shard", dim)`` or ``("other", -1)``."""
    if not tree.is_dtensor(g):
        return "plain", -1
    from torch.distributed.tensor import Replicate, Shard

    if g.device_mesh.ndim != 1:
        return "other", -1
    (pl,) = g.placements
    if isinstance(pl, Replicate):
        return "replicate", -1
    if type(pl) is Shard:  # not _StridedShard (FSDP2 + TP)
        return "shard", pl.dim % g.ndim
    return "other", -1


def _wire_dtype(dtype: torch.dtype, work: torch.dtype) -> torch.dtype:
    """The dtype a matrix travels in: the NS dtype when narrower (the cast is made once anyway)."""
    return work if work.itemsize < dtype.itemsize else dtype


_BYTES = (torch.bfloat16, torch.float16)  # gloo moves neither: sent as their bytes


def _k(dtype: torch.dtype) -> int:
    """Wire elements per element of ``dtype`` (2 bytes for the 16-bit floats, else 1)."""
    return 2 if dtype in _BYTES else 1


def _as_wire(x: Tensor) -> Tensor:
    """A flat view the process group can move (16-bit floats as their bytes: gloo lacks them)."""
    x = x.reshape(-1)
    return x.view(torch.uint8) if x.dtype in _BYTES else x


def _from_wire(x: Tensor, dtype: torch.dtype) -> Tensor:
    return x.view(dtype) if dtype in _BYTES else x


def _wire_buffer(numel: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """An empty wire buffer for ``numel`` elements of ``dtype``."""
    return torch.empty(numel * _k(dtype), dtype=torch.uint8 if dtype in _BYTES else dtype, device=device)


def _flat_cat(xs: list[Tensor], dtype: torch.dtype, device: torch.device) -> Tensor:
    if not xs:
        return _wire_buffer(0, dtype, device)
    return torch.cat([_as_wire(x.to(dtype).contiguous()) for x in xs])


def orthogonalize_distributed(
    ns_coefficients: str | Triple | Sequence[Triple] = "keller",
    ns_steps: int | None = None,
    eps: float | None = None,
    safety_factor: float | None = None,
    ns_dtype: torch.dtype | None = None,
    reshape: ReshapeRule = None,
    *,
    process_group: Any = None,
    ns_method: str | None = None,
) -> GradientTransformation:
    r"""[`orthogonalize`][], with the Newton–Schulz
    work divided across ranks: each rank orthogonalises only the matrices it owns.

    ```text
    owner(G) = assign_owners(cost = batch·m·n·min(m, n))      (same on every rank)
    on owner(G):  O = orthogonalize(whole G)                   (the single-process maths)
    exchange:     replicated G: all_gather(O);  Shard(d) DTensor G: all_to_all there and back
    ```

    The result on every rank is what the single-process ``orthogonalize`` gives for the whole
    matrix (bitwise up to the batching of same-shape matrices), returned in the layout of the
    input: a plain tensor for a plain tensor, a DTensor with the same placement for a DTensor.

    Every rank of the group must call ``update`` with the same tree of gradients (the same leaves
    present, as DDP and FSDP2 give). Plain tensors are taken as replicated over ``process_group``
    (DDP); DTensors use the group of their own 1-D device mesh. DTensors on a 2-D mesh or with a
    ``Partial`` placement fall back to the redundant computation (every rank orthogonalises the
    gathered matrix). Without an initialised default process group it is ``orthogonalize``.

    Args:
      ns_coefficients, ns_steps, eps, safety_factor, ns_dtype, reshape: as
        [`orthogonalize`][].
      process_group: the group plain (replicated) tensors are divided over; ``None`` = the default
        (world) group.

    Example:
      >>> import torch
      >>> import functional_optim as fo
      >>> opt = fo.chain(fo.orthogonalize_distributed(), fo.scale_by_learning_rate(0.02))
      >>> w = [torch.randn(4, 3)]
      >>> u, _ = opt.update(w, opt.init(w))  # one process: the plain orthogonalize
      >>> u[0].shape
      torch.Size([4, 3])

    References:
      Jordan et al., "Muon", 2024; Liu et al., "Muon is Scalable for LLM Training",
      arXiv:2502.16982, 2025 (distributed Muon: gather, orthogonalise, scatter).
    """
    inner = orthogonalize(
        ns_coefficients, ns_steps, eps, safety_factor, ns_dtype, reshape, ns_method=ns_method
    )

    def ns(mats: list[Tensor]) -> list[Tensor]:
        if not mats:
            return []
        out, _ = inner.update(mats, EmptyState())
        return out

    def work_dtype(g: Tensor) -> torch.dtype:
        return ns_dtype or default_ns_dtype(g.device)

    def ortho(grads: list[Tensor], fields: list, ps: Any) -> tuple[list[Tensor], list]:
        del fields, ps
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return ns(grads), []
        for g in grads:
            if g.is_complex():
                raise RuntimeError("Muon does not support complex parameters")
            if g.is_sparse:
                raise RuntimeError("Muon does not support sparse gradients")
        out: list[Tensor | None] = [None] * len(grads)
        buckets: dict[Any, list[int]] = {}
        for i, g in enumerate(grads):
            kind, _ = _placement_kind(g)
            if kind == "other":
                out[i] = _redundant(g, ns)
                continue
            group = cast("DTensor", g).device_mesh.get_group() if kind != "plain" else process_group
            buckets.setdefault(group, []).append(i)
        for group, idx in buckets.items():
            world = dist.get_world_size(group)
            rank = dist.get_rank(group)
            if world == 1:
                for i, y in zip(idx, ns([_local(grads[i]) for i in idx]), strict=True):
                    out[i] = _like(grads[i], y)
                continue
            owners = assign_owners([ns_cost(grads[i].shape, reshape) for i in idx], world)
            owner = dict(zip(idx, owners, strict=True))
            by_wire: dict[tuple[str, torch.dtype], list[int]] = {}
            for i in idx:
                kind, _ = _placement_kind(grads[i])
                wire = _wire_dtype(grads[i].dtype, work_dtype(grads[i]))
                by_wire.setdefault(("shard" if kind == "shard" else "replicated", wire), []).append(i)
            for (kind, wire), js in by_wire.items():
                exchange = _exchange_sharded if kind == "shard" else _exchange_replicated
                for j, y in exchange(
                    [grads[j] for j in js], [owner[j] for j in js], wire, rank, world, group, ns
                ):
                    out[js[j]] = y
        return out, []  # type: ignore[return-value]

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del params, extra
        new_updates, _ = update_leaves(ortho, updates, [], None, name="orthogonalize_distributed")
        return new_updates, state

    return GradientTransformation(inner.init, update_fn)


def _redundant(g: Tensor, ns: Any) -> Tensor:
    """Fallback for DTensor layouts not divided here: orthogonalise the gathered matrix on every rank."""
    from torch.distributed.tensor import Replicate, distribute_tensor

    g = cast("DTensor", g)  # "other" placements: a DTensor
    (y,) = ns([g.full_tensor()])
    mesh = g.device_mesh
    full = distribute_tensor(y, mesh, [Replicate()] * mesh.ndim, src_data_rank=None)
    return full.redistribute(mesh, g.placements)


def _local(g: Tensor) -> Tensor:
    return g.to_local() if tree.is_dtensor(g) else g


def _like(g: Tensor, local: Tensor) -> Tensor:
    """``local`` (this rank's piece of the result) in ``g``'s layout."""
    if not tree.is_dtensor(g):
        return local
    from torch.distributed.tensor import DTensor

    return DTensor.from_local(
        local, g.device_mesh, g.placements, run_check=False, shape=g.shape, stride=g.stride()
    )


def _exchange_replicated(
    grads: list[Tensor], owners: list[int], wire: torch.dtype, rank: int, world: int, group: Any, ns: Any
):
    """Replicated leaves: the owner orthogonalises, one ``all_gather`` shares every result."""
    import torch.distributed as dist

    device = _local(grads[0]).device
    mine = [j for j, o in enumerate(owners) if o == rank]
    results = dict(zip(mine, ns([_local(grads[j]) for j in mine]), strict=True))
    sizes = [sum(grads[j].numel() for j, o in enumerate(owners) if o == r) for r in range(world)]
    k, pad = _k(wire), max(sizes)
    send = _wire_buffer(pad, wire, device)
    if mine:
        flat = [_as_wire(results[j].to(wire).contiguous()) for j in mine]
        torch.cat(flat, out=send[: sum(f.numel() for f in flat)])
    recv = [_wire_buffer(pad, wire, device) for _ in range(world)]
    dist.all_gather(recv, send, group=group)
    offsets = [0] * world
    for j, (g, o) in enumerate(zip(grads, owners, strict=True)):
        if o == rank:
            y = results[j]
        else:
            n = g.numel()
            y = _from_wire(recv[o][k * offsets[o] : k * (offsets[o] + n)], wire)
            y = y.reshape(g.shape).to(g.dtype)
            offsets[o] += n
        yield j, _like(g, y)


def _exchange_sharded(
    grads: list[Tensor], owners: list[int], wire: torch.dtype, rank: int, world: int, group: Any, ns: Any
):
    """``Shard(d)`` DTensors: all_to_all to the owner, whole-matrix NS there, all_to_all back."""
    import torch.distributed as dist

    locals_ = [cast("DTensor", g).to_local() for g in grads]  # Shard(d) placements: DTensors
    device = locals_[0].device
    dims = [_placement_kind(g)[1] for g in grads]

    def shard_shape(j: int, r: int) -> list[int]:
        shape = list(grads[j].shape)
        shape[dims[j]] = _chunk_sizes(shape[dims[j]], world)[r]
        return shape

    def numel(shape: list[int]) -> int:
        return math.prod(shape)

    # phase 1: every rank's shard of matrix j goes to owners[j]
    send_split = [sum(locals_[j].numel() for j, o in enumerate(owners) if o == r) for r in range(world)]
    send = _flat_cat([locals_[j] for r in range(world) for j, o in enumerate(owners) if o == r], wire, device)
    mine = [j for j, o in enumerate(owners) if o == rank]
    recv_split = [sum(numel(shard_shape(j, s)) for j in mine) for s in range(world)]
    k = _k(wire)
    recv = _wire_buffer(sum(recv_split), wire, device)
    dist.all_to_all_single(recv, send, [k * n for n in recv_split], [k * n for n in send_split], group=group)
    pieces: dict[int, list[Tensor]] = {j: [] for j in mine}
    offset = 0
    for s in range(world):
        for j in mine:
            shape = shard_shape(j, s)
            n = numel(shape)
            pieces[j].append(_from_wire(recv[k * offset : k * (offset + n)], wire).reshape(shape))
            offset += n
    whole = [torch.cat(pieces[j], dim=dims[j]) for j in mine]
    results = dict(zip(mine, ns(whole), strict=True))

    # phase 2: the owner sends each rank its shard of the result
    back: list[Tensor] = []
    back_split = []
    for s in range(world):
        total = 0
        for j in mine:
            sizes = _chunk_sizes(grads[j].shape[dims[j]], world)
            piece = results[j].narrow(dims[j], sum(sizes[:s]), sizes[s])
            back.append(piece)
            total += piece.numel()
        back_split.append(total)
    send = _flat_cat(back, wire, device)
    recv_split = [sum(locals_[j].numel() for j, o in enumerate(owners) if o == r) for r in range(world)]
    recv = _wire_buffer(sum(recv_split), wire, device)
    dist.all_to_all_single(recv, send, [k * n for n in recv_split], [k * n for n in back_split], group=group)
    offset = 0
    for r in range(world):
        for j, o in enumerate(owners):
            if o != r:
                continue
            n = locals_[j].numel()
            y = _from_wire(recv[k * offset : k * (offset + n)], wire)
            y = y.reshape(locals_[j].shape).to(grads[j].dtype)
            offset += n
            yield j, _like(grads[j], y)
