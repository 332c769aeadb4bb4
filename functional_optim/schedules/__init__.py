"""Pure schedules ``count -> value``: every torch.optim.lr_scheduler, and optax favourites."""
