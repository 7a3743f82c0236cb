"""Thousands of open telemetry streams on one ingest: its memory, and Query latency while they stay open.

A 512-GPU job where every rank logs holds one stream per rank. This opens `--streams`
concurrent streams (grpc.aio, spread over `--channels` connections as ranks on a few
machines would be), each sends `--batches` small batches (a start, then points), waits for
their acks, and stays open, sending a heartbeat every `--heartbeat` seconds as a trainer does.
With all of them open it times `--queries` Query RPCs (a dashboard's runs list), after timing
the same on the idle ingest. `rejected` counts streams that did not get all their acks.

    python -m bench.streams [--streams 2000] [--channels 16] [--queries 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import threading
import time
import uuid

import grpc

from bench.harness import ingest_process, percentile
from pulse.v1 import telemetry_pb2 as pb

STREAM = "/pulse.v1.Telemetry/Stream"
RUNS_LIST = ("SELECT run_id, state, heartbeat_at FROM runs FINAL WHERE project = {p:String} "
             "ORDER BY heartbeat_at DESC LIMIT 50")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Ranks:
    """The streams, on an event loop of their own thread."""

    def __init__(self, address: str, project: str, args: argparse.Namespace) -> None:
        self.address, self.project, self.args = address, project, args
        self.acked_streams = 0
        self.rejected: list[str] = []
        self._stop = asyncio.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._ready = threading.Event()
        self._done = asyncio.run_coroutine_threadsafe(self._main(), self._loop)

    def wait_open(self, timeout: float) -> None:
        self._ready.wait(timeout)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._done.result(120)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _main(self) -> None:
        channels = [grpc.aio.insecure_channel(self.address, options=[("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(self.args.channels)]
        opened = 0
        all_open = asyncio.Event()

        def one_open() -> None:
            nonlocal opened
            opened += 1
            if opened == self.args.streams:
                all_open.set()

        tasks = [asyncio.create_task(self._rank(i, channels[i % len(channels)], one_open))
                 for i in range(self.args.streams)]
        await all_open.wait()
        self._ready.set()
        await asyncio.gather(*tasks)
        for channel in channels:
            await channel.close()

    async def _rank(self, i: int, channel: grpc.aio.Channel, opened) -> None:
        run_id = f"rank-{i}"
        stream_id = f"{run_id}.{uuid.uuid4().hex[:6]}"
        call = channel.stream_stream(STREAM, request_serializer=pb.Batch.SerializeToString,
                                     response_deserializer=pb.Ack.FromString)()
        seq = 0

        def batch(**events: object) -> pb.Batch:
            nonlocal seq
            seq += 1
            b = pb.Batch(project=self.project, run_id=run_id, stream_id=stream_id, seq=seq)
            for kind, event in events.items():
                b.events.append(pb.Event(**{kind: event}))
            return b

        try:
            now = time.time_ns() // 1000
            for n in range(self.args.batches):
                b = batch(start=pb.RunStart(name=run_id, created_at_us=now, host=f"node-{i // 8}")) if n == 0 \
                    else batch()
                b.scalars.keys.append("loss")
                b.scalars.key_index.extend([0] * 4)
                b.scalars.step.extend(range(n * 4, n * 4 + 4))
                b.scalars.ts_us.extend([now] * 4)
                b.scalars.value.extend([1.0 / (n + 1)] * 4)
                await call.write(b)
                ack = await call.read()
                if ack is grpc.aio.EOF or ack.seq != seq:
                    raise RuntimeError(f"no ack for seq {seq}: {ack}")
            self.acked_streams += 1
        except (grpc.RpcError, RuntimeError) as exc:
            self.rejected.append(f"{run_id}: {exc}")
            opened()
            return
        opened()
        while not self._stop.is_set():  # stay open, with a trainer's heartbeat
            try:
                await asyncio.wait_for(self._stop.wait(), self.args.heartbeat)
            except TimeoutError:
                await call.write(batch(heartbeat=pb.Heartbeat(ts_us=time.time_ns() // 1000)))
                await call.read()
        await call.done_writing()
        while await call.read() is not grpc.aio.EOF:  # the acks of what is left, then the end
            pass


def time_queries(client, project: str, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        client.query(RUNS_LIST, {"p": project}, timeout=60)
        latencies.append((time.perf_counter() - started) * 1000)
    return sorted(latencies)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--channels", type=int, default=16, help="connections the streams share")
    parser.add_argument("--batches", type=int, default=3, help="small batches each stream sends before idling")
    parser.add_argument("--heartbeat", type=float, default=5.0, help="seconds between an open stream's heartbeats")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    project = f"bench-streams-{uuid.uuid4().hex[:6]}"

    with ingest_process("--heartbeat-timeout", "600") as (address, ingest):
        from pulse.client import QueryClient

        client = QueryClient(address)
        time_queries(client, project, 10)  # warm up
        idle = time_queries(client, project, args.queries)
        idle_rss = rss_mb(ingest.pid)
        started = time.perf_counter()
        ranks = Ranks(address, project, args)
        ranks.wait_open(timeout=1800)
        open_s = time.perf_counter() - started
        busy = time_queries(client, project, args.queries)
        held_rss = rss_mb(ingest.pid)
        ranks.close()
        client.close()

    print(json.dumps({
        "streams": ranks.acked_streams,
        "ingest_rss_mb": round(held_rss, 1),
        "query_p99_ms_under_streams": round(percentile(busy, 0.99), 1),
        "rejected": len(ranks.rejected),
        "query_p50_ms_under_streams": round(percentile(busy, 0.50), 1),
        "query_p99_ms_idle": round(percentile(idle, 0.99), 1),
        "ingest_rss_mb_idle": round(idle_rss, 1),
        "open_s": round(open_s, 1),
        "channels": args.channels,
        "first_rejection": ranks.rejected[0] if ranks.rejected else "",
    }))


if __name__ == "__main__":
    main()
