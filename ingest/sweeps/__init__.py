"""Sweeps: W&B-format configs, grid/random/bayes search, hyperband, and the controller that serves agents."""
