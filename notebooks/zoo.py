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
# # The optimizer zoo
#
# Every algorithm of the library — the 15 of `torch.optim` and the modern ones — trains the same
# small problems from the same initialisation on the same batches (`benchmarks/zoo.py`).
# Here: the regression MLP of the zoo, one learning rate each (the algorithm's usual default), 150
# steps, run live. The full sweep (three learning rates each, and the char-level transformer) is
# `python benchmarks/zoo.py --out docs`; its transformer figure is shown at the end.

# %%
import pathlib
import sys

import torch
from IPython.display import Image, display

import functional_optim as fo

ROOT = pathlib.Path(fo.__file__).resolve().parents[1]  # the repository (works from any directory)
sys.path.insert(0, str(ROOT / "benchmarks"))
import zoo

torch.set_num_threads(1)
names = list({**zoo.REGISTRY, **zoo.MODEL_REGISTRY})
results = zoo.run([zoo.MLPTask()], names, factors=(1.0,), steps=150)

# %%
fig = zoo.figure("mlp", results["mlp"])
# %% [markdown]
# The final loss (mean of the last 15 steps) of each algorithm, best first:

# %%
ranked = sorted(
    results["mlp"].items(), key=lambda kv: zoo.final_loss(kv[1]["runs"][kv[1]["best_lr"]]["loss"])
)
for name, entry in ranked:
    run = entry["runs"][entry["best_lr"]]
    print(f"{name:15} lr {entry['best_lr']:8.1e}   final loss {zoo.final_loss(run['loss']):.4f}")

# %% [markdown]
# The char-level transformer, best of three learning rates per algorithm (committed figure of the
# last full sweep; the machine and the table are in `docs/modern_optimizers.md`):

# %%
display(Image(filename=str(ROOT / "docs" / "zoo_transformer.png")))
