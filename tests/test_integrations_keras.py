"""Keras 3 -> Pulse through `emitter.integrations.keras.PulseCallback`, on the torch backend (no TensorFlow).

Keras picks its backend when first imported, so the fit runs in its own interpreter.
"""

from __future__ import annotations

import json
import uuid

from conftest import run_script

SCRIPT = """
import json
import keras
import numpy as np

import emitter
from emitter.integrations.keras import PulseCallback


class Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append((epoch, int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)), dict(logs)))


keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse", metrics=["mae"])
x = np.random.rand(48, 4).astype("float32")
recorder = Recorder()
model.fit(x, x.sum(1, keepdims=True), epochs=3, batch_size=16, validation_split=0.25, verbose=0,
          callbacks=[PulseCallback(log_freq=2, project=PROJECT), recorder])
print("RUN", emitter.run.id)
print("EPOCHS", json.dumps(recorder.epochs))
emitter.finish()
"""


def test_keras_fit_with_pulse_callback_stores_epochs_and_batches_at_the_optimizer_step(emitter_env):
    project = f"keras-{uuid.uuid4().hex[:8]}"
    done = run_script(f"PROJECT = {project!r}\n" + SCRIPT, {"KERAS_BACKEND": "torch"})
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split("RUN ")[1].split()[0]
    epochs = json.loads(done.stdout.split("EPOCHS ")[1].splitlines()[0])
    rows = emitter_env.query("SELECT key, step, value FROM metrics FINAL WHERE run_id = {r:String}", r=run_id)
    stored = {(r["key"], r["step"]): r["value"] for r in rows}
    for epoch, step, logs in epochs:  # 3 batches an epoch (36 training samples, 16 a batch)
        assert step == 3 * (epoch + 1)
        assert stored[("epoch/epoch", step)] == epoch
        for key, value in logs.items():
            assert abs(stored[(f"epoch/{key}", step)] - value) < 1e-6, key
        assert abs(stored[("epoch/learning_rate", step)] - 0.01) < 1e-6
    batch_steps = sorted(step for key, step in stored if key == "batch/loss")
    assert batch_steps == [2, 4, 6, 8]  # every 2nd of 9 batches
    config = json.loads(emitter_env.run_row(project, run_id)["config"])
    assert config["fit/epochs"] == 3 and config["optimizer"] == "SGD"
