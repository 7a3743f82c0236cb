"""`wandb.tensorboard.patch()`: TensorBoard writers' scalars, histograms and images go to the run too."""

from emitter.tensorboard import is_patched, patch, unpatch

__all__ = ["is_patched", "patch", "unpatch"]
