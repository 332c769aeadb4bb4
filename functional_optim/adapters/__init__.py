"""Drop-in torch.optim.Optimizer classes wrapping any GradientTransformation."""
