"""Write the tour notebooks from the cell sources below (run: ``python notebooks/build_notebooks.py``).

Keeping the sources here makes the notebooks reviewable as code; CI executes the written
``.ipynb`` files (tests/test_examples_and_notebooks.py).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

QUICKSTART = [
    new_markdown_cell(
        "# functional_optim in five minutes\n\n"
        "Compose an optimizer from pure transforms, train a small model with a pure training loop, "
        "then swap the same algorithm into an ordinary `torch.optim` loop with the drop-in adapter."
    ),
    new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "import torch\n"
        "from torch import nn\n"
        "from torch.func import functional_call, grad_and_value\n\n"
        "import functional_optim as fo\n\n"
        "torch.manual_seed(0)\n"
        "x = torch.linspace(-3, 3, 256).unsqueeze(1)\n"
        "y = torch.sin(2 * x) + 0.1 * torch.randn_like(x)\n"
        "model = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 1))"
    ),
    new_markdown_cell(
        "## 1. Compose: clip → Adam moments → decoupled weight decay → scheduled learning rate"
    ),
    new_code_cell(
        "steps = 400\n"
        "opt = fo.chain(\n"
        "    fo.clip_by_global_norm(1.0),\n"
        "    fo.scale_by_adam(b1=0.9, b2=0.999),\n"
        "    fo.add_decayed_weights(1e-4),\n"
        "    fo.scale_by_learning_rate(fo.schedules.warmup_cosine_decay(0.0, 2e-2, 20, steps)),\n"
        ")\n"
        "params = {k: v.detach() for k, v in model.named_parameters()}\n"
        "state = opt.init(params)\n\n"
        "def loss_fn(p):\n"
        "    return ((functional_call(model, p, (x,)) - y) ** 2).mean()\n\n"
        "pure_losses = []\n"
        "for _ in range(steps):\n"
        "    grads, loss = grad_and_value(loss_fn)(params)\n"
        "    updates, state = opt.update(grads, state, params)\n"
        "    params = fo.apply_updates(params, updates)\n"
        "    pure_losses.append(loss.item())\n"
        "print(f'final loss {pure_losses[-1]:.4f}')"
    ),
    new_markdown_cell(
        "## 2. Drop in: the same training loop you already have\n\n"
        "`fo.adapters.AdamW` is a real `torch.optim.Optimizer`; it matches `torch.optim.AdamW` step by step."
    ),
    new_code_cell(
        "def train(opt_cls, steps=200):\n"
        "    torch.manual_seed(1)\n"
        "    net = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 1))\n"
        "    optimizer = opt_cls(net.parameters(), lr=1e-2, weight_decay=1e-2)\n"
        "    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)\n"
        "    losses = []\n"
        "    for _ in range(steps):\n"
        "        optimizer.zero_grad()\n"
        "        loss = ((net(x) - y) ** 2).mean()\n"
        "        loss.backward()\n"
        "        optimizer.step()\n"
        "        sched.step()\n"
        "        losses.append(loss.item())\n"
        "    return losses\n\n"
        "ours, theirs = train(fo.adapters.AdamW), train(torch.optim.AdamW)\n"
        "print('max |difference| of the loss curves:', max(abs(a - b) for a, b in zip(ours, theirs)))"
    ),
    new_code_cell(
        "fig, ax = plt.subplots(figsize=(6, 3.5))\n"
        "ax.semilogy(pure_losses, label='pure loop, composed optimizer')\n"
        "ax.semilogy(ours, label='fo.adapters.AdamW + CosineAnnealingLR')\n"
        "ax.semilogy(theirs, '--', label='torch.optim.AdamW + CosineAnnealingLR')\n"
        "ax.set_xlabel('step'); ax.set_ylabel('MSE'); ax.legend(); plt.show()"
    ),
]

SCHEDULES = [
    new_markdown_cell(
        "# Every schedule\n\n"
        "Each `torch.optim.lr_scheduler` as a pure function `count -> value` (plus the optax favourites). "
        "The panels come from `benchmarks/plot_schedules.py`, which also writes `docs/schedules.png`."
    ),
    new_code_cell(
        "import sys, pathlib\n"
        "sys.path.insert(0, str(pathlib.Path.cwd().parent / 'benchmarks'))\n"
        "import matplotlib.pyplot as plt\n"
        "import torch\n"
        "import plot_schedules\n\n"
        "steps = torch.arange(plot_schedules.N)\n"
        "names = list(plot_schedules.PANELS)\n"
        "fig, axes = plt.subplots(-(-len(names) // 5), 5, figsize=(18, 2.6 * -(-len(names) // 5)))\n"
        "for ax, name in zip(axes.flat, names):\n"
        "    panel = plot_schedules.PANELS[name]\n"
        "    for s in panel if isinstance(panel, list) else [panel]:\n"
        "        ax.plot(steps, torch.as_tensor(s(steps)).expand(len(steps)).numpy())\n"
        "    ax.set_title(name, fontsize=7)\n"
        "for ax in list(axes.flat)[len(names):]:\n"
        "    ax.axis('off')\n"
        "plt.tight_layout(); plt.show()"
    ),
    new_markdown_cell(
        "A schedule can drive *any* hyperparameter, e.g. Adam's β₁ with OneCycle's momentum curve:"
    ),
    new_code_cell(
        "import functional_optim as fo\n"
        "total = 100\n"
        "opt = fo.adam(lr=fo.schedules.one_cycle_lr(1e-2, total_steps=total),\n"
        "              betas=(fo.schedules.one_cycle_momentum(total_steps=total), 0.999))\n"
        "params = {'w': torch.zeros(3)}\n"
        "state = opt.init(params)\n"
        "lrs, b1s = [], []\n"
        "for _ in range(total):\n"
        "    updates, state = opt.update({'w': torch.ones(3)}, state, params)\n"
        "    lrs.append(float(state.hyperparams['lr'])); b1s.append(float(state.hyperparams['betas'][0]))\n"
        "fig, ax = plt.subplots(figsize=(6, 3)); ax.plot(lrs, label='lr'); ax2 = ax.twinx()\n"
        "ax2.plot(b1s, color='C1', label='beta1'); ax.set_xlabel('step'); fig.legend(); plt.show()"
    ),
]

MUON = [
    new_markdown_cell(
        "# Muon vs AdamW on a small char-level transformer\n\n"
        "`fo.muon_with_adamw` runs Muon (momentum → batched Newton–Schulz → shape scaling) on the hidden "
        "matrices and AdamW on embeddings, head, biases and norms, through `fo.partition`. "
        "The training code is `examples/muon_vs_adamw.py` (here a short run)."
    ),
    new_code_cell(
        "import sys, pathlib\n"
        "sys.path.insert(0, str(pathlib.Path.cwd().parent / 'examples'))\n"
        "import matplotlib.pyplot as plt\n"
        "import muon_vs_adamw\n\n"
        "results = muon_vs_adamw.run_comparison(steps=60, eval_every=10)\n"
        "for name in ('adamw', 'muon'):\n"
        "    r = results[name]\n"
        "    print(f\"{name:6s} final val loss {r['val_loss'][-1]:.3f}  ({r['time'][-1]:.1f}s)\")"
    ),
    new_code_cell(
        "fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))\n"
        "for name in ('adamw', 'muon'):\n"
        "    r = results[name]\n"
        "    a.plot(r['step'], r['val_loss'], marker='o', label=name)\n"
        "    b.plot(r['time'], r['val_loss'], marker='o', label=name)\n"
        "a.set_xlabel('step'); b.set_xlabel('wall-clock (s)')\n"
        "for ax in (a, b):\n"
        "    ax.set_ylabel('validation loss (nats/char)'); ax.legend()\n"
        "plt.tight_layout(); plt.show()"
    ),
]


def write(name: str, cells: list) -> None:
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    nbformat.write(nb, HERE / name)
    print("wrote", HERE / name)


if __name__ == "__main__":
    write("quickstart.ipynb", QUICKSTART)
    write("schedules.ipynb", SCHEDULES)
    write("muon_vs_adamw.ipynb", MUON)
