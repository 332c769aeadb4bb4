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
# # Muon vs AdamW on a small char-level transformer
#
# `fo.muon_with_adamw` runs Muon (momentum → batched Newton–Schulz → shape scaling) on the hidden
# matrices and AdamW on embeddings, head, biases and norms, through `fo.partition`. The training
# code is `examples/muon_vs_adamw.py`. Here: a short run (40 steps) for **three seeds** each, so
# the gap between the optimizers can be compared with the spread between seeds; the script runs
# longer.

# %%
import pathlib
import sys

import matplotlib.pyplot as plt

import functional_optim as fo

ROOT = pathlib.Path(fo.__file__).resolve().parents[1]  # the repository (works from any directory)
sys.path.insert(0, str(ROOT / "examples"))
import muon_vs_adamw

SEEDS = (0, 1, 2)
runs = {seed: muon_vs_adamw.run_comparison(steps=40, eval_every=10, seed=seed) for seed in SEEDS}
for name in ("adamw", "muon"):
    finals = [runs[s][name]["val_loss"][-1] for s in SEEDS]
    print(f"{name:6s} final val loss per seed: " + ", ".join(f"{v:.3f}" for v in finals))

# %%
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
for color, name in (("C0", "adamw"), ("C1", "muon")):
    for i, seed in enumerate(SEEDS):
        r = runs[seed][name]
        label = name if i == 0 else None
        a.plot(r["step"], r["val_loss"], marker="o", ms=3, color=color, alpha=0.8, label=label)
        b.plot(r["time"], r["val_loss"], marker="o", ms=3, color=color, alpha=0.8, label=label)
a.set_xlabel("step")
b.set_xlabel("wall-clock (s)")
for ax in (a, b):
    ax.set_ylabel("validation loss (nats/char)")
    ax.legend(title=f"{len(SEEDS)} seeds each")
plt.tight_layout()
plt.show()
