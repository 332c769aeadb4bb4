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
# # functional_optim in five minutes
#
# Compose an optimizer from pure transforms, train a small model with a pure training loop, then
# swap the same algorithm into an ordinary `torch.optim` loop with the drop-in adapter.

# %%
import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.func import functional_call, grad_and_value

import functional_optim as fo

torch.manual_seed(0)
x = torch.linspace(-3, 3, 256).unsqueeze(1)
y = torch.sin(2 * x) + 0.1 * torch.randn_like(x)
model = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 1))

# %% [markdown]
# ## 1. Compose: clip → Adam moments → decoupled weight decay → scheduled learning rate

# %%
steps = 400
opt = fo.chain(
    fo.clip_by_global_norm(1.0),
    fo.scale_by_adam(b1=0.9, b2=0.999),
    fo.add_decayed_weights(1e-4),
    fo.scale_by_learning_rate(fo.schedules.warmup_cosine_decay(0.0, 2e-2, 20, steps)),
)
params = {k: v.detach() for k, v in model.named_parameters()}
state = opt.init(params)


def loss_fn(p):
    return ((functional_call(model, p, (x,)) - y) ** 2).mean()


pure_losses = []
for _ in range(steps):
    grads, loss = grad_and_value(loss_fn)(params)
    updates, state = opt.update(grads, state, params)
    params = fo.apply_updates(params, updates)
    pure_losses.append(loss.item())
print(f"final loss {pure_losses[-1]:.4f}")


# %% [markdown]
# ## 2. Drop in: the same training loop you already have
#
# `fo.adapters.AdamW` is a real `torch.optim.Optimizer`; it matches `torch.optim.AdamW` step by step.


# %%
def train(opt_cls, steps=200):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 1))
    optimizer = opt_cls(net.parameters(), lr=1e-2, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        optimizer.step()
        sched.step()
        losses.append(loss.item())
    return losses


ours, theirs = train(fo.adapters.AdamW), train(torch.optim.AdamW)
print("max |difference| of the loss curves:", max(abs(a - b) for a, b in zip(ours, theirs, strict=True)))

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.semilogy(pure_losses, label="pure loop, composed optimizer")
ax.semilogy(ours, label="fo.adapters.AdamW + CosineAnnealingLR")
ax.semilogy(theirs, "--", label="torch.optim.AdamW + CosineAnnealingLR")
ax.set_xlabel("step")
ax.set_ylabel("MSE")
ax.legend()
plt.show()
