"""Training: data, losses, stage 1/2, built-in styles, train/eval CLI."""
