"""The README's layout table names every benchmark in bench/, so a new one is found where newcomers look."""

from __future__ import annotations

import re

from conftest import ROOT

HELPERS = {"__init__", "harness"}  # bench/'s shared code, not benchmarks


def test_the_readme_bench_row_names_every_benchmark_module():
    row = next(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `bench/` |"))
    named = set(re.findall(r"`(?:python -m )?bench\.(\w+)`", row))
    modules = {path.stem for path in (ROOT / "bench").glob("*.py")} - HELPERS
    assert modules - named == set(), f"bench modules the README's layout table does not name: {modules - named}"
    assert named - modules == set(), f"the README names benchmarks bench/ does not have: {named - modules}"
