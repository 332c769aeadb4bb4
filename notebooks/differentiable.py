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
# # Differentiating through optimizers
#
# Every `functional_optim` transform is a pure function `(grads, state, params) -> (updates, state)`,
# so *K steps of training* are an ordinary differentiable function of the initial parameters and of
# hyperparameters passed as 0-dim tensors. This notebook shows:
#
# 1. **MAML** on sinusoid regression with an Adam inner loop (`fo.adam` + `fo.unroll`, meta-gradients
#    by `torch.func.grad`, tasks batched by `torch.func.vmap`);
# 2. a **learned learning rate** by hyper-gradient descent through 20 unrolled SGD steps;
# 3. an **ensemble of 16 MLPs** trained by one vmapped optimizer;
# 4. the **memory** of unrolling (linear in K) and **truncated backpropagation** (`truncate=T`).
#
# Settings are small so that it runs in well under a minute; the scripts in `examples/` run the full
# versions.

# %%
import pathlib
import sys

import matplotlib.pyplot as plt
import torch

import functional_optim as fo

ROOT = pathlib.Path(fo.__file__).resolve().parents[1]  # the repository (works from any directory)
sys.path.insert(0, str(ROOT / "examples"))
import learned_lr
import maml_sinusoid
import vmap_ensemble

torch.set_num_threads(1)  # tiny models

# %% [markdown]
# ## 1. MAML with an Adam inner loop
#
# `maml_sinusoid.meta_train` differentiates the query loss after 3 `fo.adam` steps on 10 support
# points w.r.t. the initialization (second order), averaged over a meta-batch of tasks with `vmap`.
# Only 300 meta-iterations here (the script uses 1000).

# %%
maml_params, history = maml_sinusoid.meta_train(iterations=300, inner_steps=3, inner_lr=0.03)
random_init = maml_sinusoid.init_mlp(torch.Generator().manual_seed(0))
for name, p in [("MAML init", maml_params), ("random init", random_init)]:
    r = maml_sinusoid.evaluate(p, inner_steps=3, inner_lr=0.03, n_tasks=100)
    print(
        f"{name:<12} query MSE before adaptation {r['pre_adaptation_mse']:.3f}, "
        f"after 3 Adam steps {r['post_adaptation_mse']:.3f}"
    )

# %% [markdown]
# **Left:** the query MSE after adaptation during meta-training (each point the mean of 20
# meta-iterations). **Right:** a task not seen in meta-training: its true curve (black), the 10
# support points (triangles), the MAML initialization before adaptation (dashed) and the model
# after 1, 3 and 10 Adam steps on the support points.

# %%
gen = torch.Generator().manual_seed(7)
amp, phase = maml_sinusoid.sample_tasks(1, gen)
xs, ys = maml_sinusoid.sample_points(amp, phase, maml_sinusoid.SHOTS, gen)
grid = torch.linspace(-5, 5, 200)[:, None]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].plot(torch.tensor(history).unfold(0, 20, 20).mean(1))
axes[0].set(title="meta-training", xlabel="meta-iteration / 20", ylabel="post-adaptation query MSE")
axes[1].plot(grid, amp * torch.sin(grid - phase), "k", label="true task")
axes[1].plot(xs[0], ys[0], "k^", label="10 support points")
with torch.no_grad():
    axes[1].plot(grid, maml_sinusoid.forward(maml_params, grid), "--", label="MAML init")
for steps in (1, 3, 10):
    adapted = maml_sinusoid.adapt(maml_params, xs[0], ys[0], steps, 0.03)
    with torch.no_grad():
        axes[1].plot(grid, maml_sinusoid.forward(adapted, grid), label=f"after {steps} Adam steps")
axes[1].legend(fontsize=8)
axes[1].set(title="adapting the MAML initialization to a new task", xlabel="x", ylabel="y")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. A learned learning rate
#
# `learned_lr.run` differentiates the validation loss after 20 steps of `fo.sgd(lr, momentum=0.5)`
# w.r.t. `log lr` (plain autograd through the unrolled run) and updates it with `fo.adam`; a grid search
# over the same 20-step run shows where the optimum is.

# %%
r = learned_lr.run(init_lr=1e-3, steps=20, meta_steps=60)
print(
    f"lr {r['initial_lr']:.4f} -> {r['learned_lr']:.4f}; val loss {r['initial_val_loss']:.4f} -> "
    f"{r['learned_val_loss']:.4f} (grid best: lr {r['grid_best_lr']:.4f}, {r['grid_best_val_loss']:.4f})"
)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].semilogx(r["grid_lrs"], r["grid_val_losses"], "o-", ms=3, label="grid (no gradients)")
axes[0].semilogx(r["lr_history"], r["val_loss_history"], "x", label="hyper-gradient descent")
axes[0].set(ylim=(0, 1.2), xlabel="lr", ylabel="val loss after 20 steps")
axes[0].legend()
axes[1].semilogy(r["lr_history"])
axes[1].set(xlabel="meta-step", ylabel="lr")
plt.show()

# %% [markdown]
# ## 3. An ensemble trained by one vmapped optimizer
#
# `torch.func.stack_module_state` stacks 16 MLPs; `vmap(opt.init)` and `vmap(opt.update)` give each
# member its own AdamW state. The vmapped update equals a Python loop over the members.

# %%
e = vmap_ensemble.run(steps=300)
print(
    f"vmapped == loop: max |diff| {e['max_abs_diff_vs_loop']:.1e}; "
    f"{1e3 * e['vmap_seconds_per_step']:.1f} ms/step (vmap) vs "
    f"{1e3 * e['loop_seconds_per_step']:.1f} ms (loop)"
)
print(f"test MSE: mean member {e['mean_member_test_mse']:.4f}, ensemble {e['ensemble_test_mse']:.4f}")
xt, yt, xs_, ys_ = e["data"]
grid = torch.linspace(-2, 2, 200)[:, None]
with torch.no_grad():
    batched_call = torch.func.vmap(torch.func.functional_call, in_dims=(None, 0, None))
    preds = batched_call(e["template"], e["params"], (grid,))
plt.figure(figsize=(6, 3.5))
plt.plot(xt, yt, ".", color="0.6", ms=3, label="train")
for p in preds:
    plt.plot(grid, p, color="C0", alpha=0.2, lw=1)
plt.plot(grid, preds.mean(0), color="C3", label="ensemble mean")
plt.legend()
plt.show()

# %% [markdown]
# ## 4. Memory of unrolling, and truncated backpropagation
#
# `fo.SavedTensorsMeter` counts the bytes autograd keeps for the backward pass (each storage once):
# differentiating through K steps keeps every step's intermediates, so it grows linearly in K.
# `fo.unroll(..., truncate=T)` stops gradients through the parameters and the optimizer state before the
# last T steps: memory stays bounded (and the meta-gradient becomes the short-horizon estimate).

# %%
xt, yt, xv, yv = learned_lr.make_data()
p0 = learned_lr.init_params()


def saved_mib(k, truncate=None):
    params = {n: v.clone().requires_grad_(True) for n, v in p0.items()}
    with fo.SavedTensorsMeter() as meter:
        out = fo.unroll(
            fo.adam(lr=0.01),
            learned_lr.loss,
            params,
            batches=[(xt, yt)] * k,
            truncate=truncate,
            inner_grad="autograd",
        )
        value = learned_lr.loss(out.params, xv, yv)
    kept = meter.bytes / 2**20
    if value.requires_grad:
        value.backward()
    return kept


ks = [1, 5, 10, 20]
full = [saved_mib(k) for k in ks]
trunc = [saved_mib(k, truncate=5) for k in ks]
for k, a, b in zip(ks, full, trunc, strict=True):
    print(f"K={k:>2}: {a:.3f} MiB saved for backward, {b:.3f} MiB with truncate=5")
plt.figure(figsize=(5, 3))
plt.plot(ks, full, "o-", label="full unroll")
plt.plot(ks, trunc, "s-", label="truncate=5")
plt.xlabel("K unrolled steps")
plt.ylabel("MiB saved for backward")
plt.legend()
plt.show()
