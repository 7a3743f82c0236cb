"""Framework integrations that need no W&B shim; each module imports its framework, this package does not.

- `emitter.integrations.transformers.PulseCallback`: a Hugging Face `TrainerCallback`
  (importing the module also registers `report_to="pulse"`);
- `emitter.integrations.lightning.PulseLogger`: a Lightning `Logger`;
- `emitter.integrations.keras.PulseCallback`: a Keras 3 `Callback`.

Each logs the framework's config, its metrics at the framework's global step, and (torch
frameworks) `watch()` histograms. Checkpoints as artifacts wait for the artifacts issue (14).
"""

from __future__ import annotations

import sys
from typing import Any


def live_run() -> Any:
    """`emitter.run`: the live run, or None (`run.finish()` sets it back to None)."""
    return getattr(sys.modules.get("emitter"), "run", None)
