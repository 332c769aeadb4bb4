# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # Every schedule
#
# Each `torch.optim.lr_scheduler` as a pure function `count -> value` (plus the optax favourites).
# The panels come from `benchmarks/plot_schedules.py`, which also writes `docs/schedules.png`.

# %%
import pathlib
import sys

import matplotlib.pyplot as plt
import torch

import functional_optim as fo

ROOT = pathlib.Path(fo.__file__).resolve().parents[1]  # the repository (works from any directory)
sys.path.insert(0, str(ROOT / "benchmarks"))
import plot_schedules

steps = torch.arange(plot_schedules.N)
names = list(plot_schedules.PANELS)
fig, axes = plt.subplots(-(-len(names) // 5), 5, figsize=(18, 2.6 * -(-len(names) // 5)))
for ax, name in zip(axes.flat, names, strict=False):
    panel = plot_schedules.PANELS[name]
    for s in panel if isinstance(panel, list) else [panel]:
        ax.plot(steps, torch.as_tensor(s(steps)).expand(len(steps)).numpy())
    ax.set_title(name, fontsize=7)
for ax in list(axes.flat)[len(names) :]:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# A schedule can drive *any* hyperparameter, e.g. Adam's β₁ with OneCycle's momentum curve:

# %%
total = 100
opt = fo.adam(
    lr=fo.schedules.one_cycle_lr(1e-2, total_steps=total),
    betas=(fo.schedules.one_cycle_momentum(total_steps=total), 0.999),
)
params = {"w": torch.zeros(3)}
state = opt.init(params)
lrs, b1s = [], []
for _ in range(total):
    updates, state = opt.update({"w": torch.ones(3)}, state, params)
    lrs.append(float(state.hyperparams["lr"]))
    b1s.append(float(state.hyperparams["betas"][0]))
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(lrs, label="lr")
ax2 = ax.twinx()
ax2.plot(b1s, color="C1", label="beta1")
ax.set_xlabel("step")
fig.legend()
plt.show()
