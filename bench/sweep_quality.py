"""Search quality of bayes against random on known test functions: median simple regret.

Each function is written as a W&B sweep config and searched with the
controller's own suggestion code (`ingest.sweeps.search.next_params`), one
trial at a time, for `--trials` trials and `--seeds` seeds per method. Simple
regret is f(the trial with the best observed value) minus the known optimum,
with f noiseless even where the search saw noise.

    python -m bench.sweep_quality [--trials 30] [--seeds 10] [--jobs 2]

Prints one JSON line:
    {"functions": {"branin": {"bayes_regret": ..., "random_regret": ..., "trials": 30, "seeds": 10}, ...}}
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from ingest.sweeps.config import parse_sweep
from ingest.sweeps.search import Observation, next_params

HARTMANN_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                       [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
HARTMANN_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                              [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
HARTMANN_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
OPTIMIZER_PENALTY = {"adam": 0.0, "rmsprop": 0.15, "sgd": 0.3}


def branin(p: dict) -> float:
    x1, x2 = p["x1"], p["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def hartmann6(p: dict) -> float:
    x = np.array([p[f"x{i}"] for i in range(1, 7)])
    inner = (HARTMANN_A * (x - HARTMANN_P) ** 2).sum(axis=1)
    return float(-(HARTMANN_ALPHA * np.exp(-inner)).sum())


def training_like(p: dict) -> float:
    """A made-up validation loss over lr (log scale), dropout, width and an optimizer choice."""
    return (0.5 * (math.log10(p["lr"]) + 2.5) ** 2 + 2 * (p["dropout"] - 0.3) ** 2
            + 0.05 * (math.log2(p["width"]) - 7) ** 2 + OPTIMIZER_PENALTY[p["optimizer"]])


FUNCTIONS = {
    "branin": (branin, 0.397887, 0.0, {"x1": {"min": -5.0, "max": 10.0}, "x2": {"min": 0.0, "max": 15.0}}),
    "hartmann6": (hartmann6, -3.32237, 0.0, {f"x{i}": {"min": 0.0, "max": 1.0} for i in range(1, 7)}),
    "noisy_training_4d": (training_like, 0.0, 0.05, {
        "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1.0},
        "dropout": {"min": 0.0, "max": 0.8},
        "width": {"min": 16, "max": 512},
        "optimizer": {"values": ["sgd", "adam", "rmsprop"]},
    }),
}


def regret(name: str, method: str, seed: int, trials: int) -> float:
    function, optimum, noise, parameters = FUNCTIONS[name]
    config = parse_sweep({"program": "train.py", "method": method, "metric": {"name": "loss", "goal": "minimize"},
                          "parameters": parameters})
    rng = np.random.default_rng(seed)
    noise_rng = np.random.default_rng(seed + 10_000)
    seen: list[Observation] = []
    true_values = []
    for _ in range(trials):
        params, _ = next_params(config, seen, set(), rng)
        value = function(params)
        true_values.append(value)
        seen.append(Observation(params, value + noise * float(noise_rng.normal())))
    incumbent = int(np.argmin([o.value for o in seen]))
    return true_values[incumbent] - optimum


def _one_blas_thread() -> None:
    """One BLAS thread per worker: the workers already fill the cores, and oversubscribing them is slow."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", nargs="*", default=list(FUNCTIONS), help="functions to run")
    args = parser.parse_args()
    jobs = [(name, method, seed, args.trials) for name in args.only for method in ("bayes", "random")
            for seed in range(args.seeds)]
    start = time.monotonic()
    with ProcessPoolExecutor(args.jobs, initializer=_one_blas_thread) as pool:
        results = list(pool.map(regret, *zip(*jobs)))
    out: dict = {"functions": {}}
    for name in args.only:
        per = {m: [r for (n, mm, _, _), r in zip(jobs, results) if n == name and mm == m] for m in ("bayes", "random")}
        bayes, random = float(np.median(per["bayes"])), float(np.median(per["random"]))
        out["functions"][name] = {"bayes_regret": round(bayes, 5), "random_regret": round(random, 5),
                                  "ratio": round(bayes / random, 3) if random else None,
                                  "trials": args.trials, "seeds": args.seeds}
    out["target_met"] = all(f["bayes_regret"] <= 0.5 * f["random_regret"] for f in out["functions"].values())
    out["seconds"] = round(time.monotonic() - start, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
