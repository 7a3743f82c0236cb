"""The dashboard's data layer on other sources than the seeded `pulse up`: runs the real emitter logged,
and a ClickHouse server read directly over HTTP (the chunk projection drawing what raw points draw)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest
from dashboard_stack import shared_stack
from test_dashboard_seed import HOSTILE_KEY, HOSTILE_RUN, HOSTILE_TAG, SPIKE, seed

from bench.dashboard_queries import DROP_PROJECTION
from conftest import Ingest, run_script
from dashboard.data import DataError, RunFilter, Source
from fixtures.clickhouse_http import serve_clickhouse_http


@pytest.fixture(scope="module")
def seeded_stack(request, tmp_path_factory):
    return shared_stack(request, tmp_path_factory)


def names(table: pa.Table) -> list[str]:
    return table.column("name").to_pylist()


# -- runs logged by the real emitter ------------------------------------------------------------------------


def assert_same_picture(from_points: list[dict], from_chunks: list[dict]) -> None:
    """Chunked series draw what point series draw: the same buckets (a chunk goes to the bucket of its
    last step, so a bucket edge may move by less than a chunk), spikes, NaN/Inf counts and points."""
    def series(rows, run_id, key):
        return [r for r in rows if r["run_id"] == run_id and r["key"] == key]

    pairs = {(r["run_id"], r["key"]) for r in from_points}
    assert pairs == {(r["run_id"], r["key"]) for r in from_chunks}
    for run_id, key in pairs:
        points, chunks = series(from_points, run_id, key), series(from_chunks, run_id, key)
        assert 0 < len(chunks) <= 10 and chunks[-1]["step"] == points[-1]["step"]
        for column in ("points", "nan", "posinf", "neginf"):
            assert sum(r[column] for r in chunks) == sum(r[column] for r in points), column
        assert max(r["max"] or -1 for r in chunks) == max(r["max"] or -1 for r in points)
        assert min(r["min"] or 9e9 for r in chunks) == min(r["min"] or 9e9 for r in points)
        assert chunks[-1]["last"] == points[-1]["last"]


def test_runs_logged_by_the_emitter_read_back(seeded_stack, tmp_path: Path) -> None:
    stack, seeded = seeded_stack
    project = f"{seeded.project}-emitter"
    code = textwrap.dedent(f"""
        import emitter
        with emitter.init(project={project!r}, name={HOSTILE_RUN!r}, tags=[{HOSTILE_TAG!r}], config={{"lr": 0.3}}):
            for step in range(500):
                emitter.log({{{HOSTILE_KEY!r}: 1e6 if step == 123 else 1.0 / (step + 1)}})
    """)
    result = run_script(code, env={"PULSE_SERVER": stack.address, "PULSE_DIR": str(tmp_path / "spool")})
    assert result.returncode == 0, result.stderr
    source = Source(server=stack.address, clickhouse_url="")
    [run] = source.runs_page(project, summary_keys=[HOSTILE_KEY]).to_pylist()
    assert run["name"] == HOSTILE_RUN and run["state"] == "finished" and run["tags"] == [HOSTILE_TAG]
    assert float(run["summary_values"][0]) == pytest.approx(1 / 500)
    series = source.series(project, [run["run_id"]], HOSTILE_KEY, buckets=50).to_pylist()
    assert max(r["max"] for r in series) == 1e6 and sum(r["points"] for r in series) == 500


# -- straight to a ClickHouse server --------------------------------------------------------------------------


def test_source_reads_a_clickhouse_server_directly(tmp_path: Path) -> None:
    """PULSE_CLICKHOUSE_URL=http(s)://... : the same queries over clickhouse-connect's HTTP client, with a
    `sweeps` row written as the sweep controller would, and the server refusing writes."""
    import clickhouse_connect

    with serve_clickhouse_http(tmp_path / "clickhouse") as url:
        ingest = Ingest(tmp_path / "data", "--clickhouse", url, "--flush-interval", "0.1").start()
        try:
            seeded = seed(ingest.address, emitter_runs=False)
        finally:
            ingest.stop()
        writer = clickhouse_connect.get_client(dsn=url, autogenerate_session_id=False)
        config = {"name": "lr search", "method": "random", "metric": {"name": "val_loss", "goal": "minimize"},
                  "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1},
                                 "batch_size": {"values": [32, 64, 128]}, "dropout": {"min": 0.0, "max": 0.5}},
                  "run_cap": 20}
        writer.command("INSERT INTO sweeps (project, sweep_id, config, state, created_at, updated_at) VALUES "
                       "({p:String}, {s:String}, {c:String}, 'finished', now64(6), now64(6))",
                       parameters={"p": seeded.project, "s": seeded.sweep_id, "c": json.dumps(config)})
        source = Source(server="127.0.0.1:1", clickhouse_url=url)  # the ingest is never asked
        assert seeded.project in source.projects()
        ids = [seeded.runs["alpha"], seeded.runs["beta"]]
        assert source._has_chunk_projection()  # migration 0040: chunks of 256 steps, pre-aggregated
        from_chunks = source.series(seeded.project, ids, ["Train/loss", "Test/acc"], buckets=10).to_pylist()
        writer.command(DROP_PROJECTION)
        source = Source(server="127.0.0.1:1", clickhouse_url=url)
        assert not source._has_chunk_projection()
        from_points = source.series(seeded.project, ids, ["Train/loss", "Test/acc"], buckets=10).to_pylist()
        assert_same_picture(from_points, from_chunks)
        page = source.runs_page(seeded.project, RunFilter(states=("crashed", "failed")), limit=10)
        assert set(names(page)) >= {"beta", "trial-08"}
        alpha = seeded.runs["alpha"]
        series = source.series(seeded.project, [alpha], "Train/loss", buckets=100)
        assert series.num_rows <= 100 and max(series.column("max").to_pylist()) == SPIKE
        [sweep] = source.sweeps(seeded.project).to_pylist()
        assert json.loads(sweep["config"])["name"] == "lr search" and sweep["state"] == "finished"
        assert sweep["trials"] == 18
        hostile = source.runs_page(seeded.hostile_project).to_pylist()
        assert source.metric_keys(seeded.hostile_project, [hostile[0]["run_id"]]) == [HOSTILE_KEY]
        assert source.sql("SELECT count() AS n FROM sweeps").to_pylist() == [{"n": 1}]
        with pytest.raises(DataError, match="(?i)readonly"):
            source.sql("INSERT INTO alerts (title) VALUES ('x')")
    with pytest.raises(DataError, match=url.removeprefix("http://")):  # the server is gone now
        Source(clickhouse_url=url).projects()
