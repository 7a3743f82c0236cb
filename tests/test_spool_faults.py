"""The spool under a full disk and bit rot, concurrent `pulse sync`s, and planted pickles.

Real trainer processes write real spools; a real ingest stores what `pulse sync`
uploads, and every case counts the points in the store.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import time
import uuid
import zlib
from pathlib import Path

import pytest

from conftest import ROOT, Ingest, run_script, wait_for
from emitter.records import HEADER_BYTES, MAGIC, scan
from pulse.v1 import telemetry_pb2 as pb

# Offline runs, one spool record per chunk of 5 steps: spools of many small records.
WRITER = """
import sys, emitter
project, runs, chunks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for n in range(runs):
    run = emitter.init(project=project, id=f"r{n:03d}")
    run._batcher.flush(30)  # the run's start in a record of its own
    for chunk in range(chunks):
        for step in range(chunk * 5, chunk * 5 + 5):
            emitter.log({f"k{j}": step * 10 + j for j in range(3)}, step=step)
        run._batcher.flush(30)  # one record per chunk
    emitter.finish()
    print("RUN", run.id, run.stream_id, flush=True)
"""


def write_runs(pulse_dir: Path, project: str, runs: int, chunks: int = 4) -> dict[str, Path]:
    """run id -> its stream directory, written by a real offline trainer."""
    done = run_script(WRITER, {"PULSE_MODE": "offline", "PULSE_DIR": str(pulse_dir), "PULSE_SYSTEM_INTERVAL": "0"},
                      args=[project, str(runs), str(chunks)])
    assert done.returncode == 0, done.stderr
    return {line.split()[1]: pulse_dir / "spool" / line.split()[2]
            for line in done.stdout.splitlines() if line.startswith("RUN ")}


def layout(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every record, read by the format's own rules, not by the reader under test."""
    bounds, offset = [], 0
    while offset < len(data):
        assert data[offset:offset + len(MAGIC)] == MAGIC
        _, length, _ = struct.unpack_from("<QII", data, offset + len(MAGIC))
        bounds.append((offset, offset + HEADER_BYTES + length))
        offset += HEADER_BYTES + length
    return bounds


def points_of(data: bytes, start: int, end: int) -> set[tuple[str, int]]:
    """(key, step) of the metric points in the record at data[start:end]."""
    scalars = pb.Batch.FromString(data[start + HEADER_BYTES:end]).scalars
    return {(scalars.keys[i], step) for i, step in zip(scalars.key_index, scalars.step)}


def stored(server: Ingest, project: str, run_id: str) -> set[tuple[str, int]]:
    """The run's points in the store, each checked against the value its trainer logged."""
    rows = server.query("SELECT key, step, value FROM metrics FINAL WHERE project = {p:String} AND run_id = "
                        "{r:String}", p=project, r=run_id)
    assert all(r["value"] == r["step"] * 10 + int(r["key"][1:]) for r in rows), "a stored value is wrong"
    assert len(rows) == len({(r["key"], r["step"]) for r in rows}), "a point is stored twice"
    return {(r["key"], r["step"]) for r in rows}


def sync(pulse_dir: Path, server: Ingest) -> subprocess.CompletedProcess:
    return run_script("from pulse.cli import main; raise SystemExit(main(['sync']))",
                      {"PULSE_DIR": str(pulse_dir), "PULSE_SERVER": server.address})


def streams_left(pulse_dir: Path) -> list[str]:
    spool = pulse_dir / "spool"
    return sorted(p.name for p in spool.iterdir() if any(p.glob("*.wal"))) if spool.exists() else []


# -- bit rot and truncation ----------------------------------------------------


def test_the_reader_skips_exactly_the_damaged_record_for_a_flip_at_every_byte_of_a_real_spool(tmp_path):
    [stream] = write_runs(tmp_path / "pulse", "reader", 1).values()
    data = (stream / "00000001.wal").read_bytes()
    bounds = layout(data)
    assert len(bounds) >= 6
    for i, (start, end) in enumerate(bounds):
        for at in range(start, end):
            damaged = bytearray(data)
            damaged[at] ^= 0xFF
            records, damage = scan(bytes(damaged))
            assert [r.offset - HEADER_BYTES for r in records] == [s for s, _ in bounds[:i] + bounds[i + 1:]], at
            assert [(d.offset, d.length, d.kind) for d in damage] == [(start, end - start, "corrupt")], at
    for cut in range(len(data)):
        records, damage = scan(data[:cut])
        assert [r.offset - HEADER_BYTES for r in records] == [s for s, e in bounds if e <= cut], cut
        assert [d.kind for d in damage] == ([] if cut in {s for s, _ in bounds} else ["cut short"]), cut


CASES = [("flip", "magic"), ("flip", "length"), ("flip", "payload"), ("cut", "boundary"), ("cut", "payload")]


def test_sync_uploads_every_intact_record_around_damage_at_every_record_boundary_and_quarantines(
        emitter_env, tmp_path):
    project = f"rot-{uuid.uuid4().hex[:6]}"
    pulse_dir = tmp_path / "pulse"
    records = 6  # the start, 4 chunks of points, the finish
    # Damage every record but the first: without its start a run is unknown to the server.
    cases = [(i, kind, where) for i in range(1, records) for kind, where in CASES]
    runs = write_runs(pulse_dir, project, len(cases))
    expected, reports = {}, {}
    for (run_id, stream), (i, kind, where) in zip(sorted(runs.items()), cases):
        segment = stream / "00000001.wal"
        data = segment.read_bytes()
        bounds = layout(data)
        assert len(bounds) == records, bounds
        start, end = bounds[i]
        at = {"magic": start, "length": start + len(MAGIC) + 8, "payload": (start + HEADER_BYTES + end) // 2,
              "boundary": start}[where]
        if kind == "flip":
            damaged = bytearray(data)
            damaged[at] ^= 0xFF
            segment.write_bytes(bytes(damaged))
            kept = [b for j, b in enumerate(bounds) if j != i]
            reports[run_id] = f"{segment}: SKIPPED {end - start} bytes at offset {start} corrupt"
        else:
            segment.write_bytes(data[:at])
            kept = bounds[:i]
            if at != start:
                reports[run_id] = (f"{segment}: skipped (a write cut short by a kill) {at - start} bytes at "
                                   f"offset {start}")
        expected[run_id] = set().union(*(points_of(data, s, e) for s, e in kept))
        # what the quarantined file must hold: the damaged bytes as they were, not deleted
        expected[run_id, "bytes"] = segment.read_bytes()

    synced = sync(pulse_dir, emitter_env)

    assert synced.returncode == 1, synced.stdout + synced.stderr  # damage was skipped: say so in the status
    assert "Traceback" not in synced.stderr, synced.stderr
    for (run_id, stream), (i, kind, where) in zip(sorted(runs.items()), cases):
        case = f"{kind} {where} of record {i}"
        assert stored(emitter_env, project, run_id) == expected[run_id], case
        quarantined = pulse_dir / "quarantine" / stream.name / "00000001.wal"
        if run_id in reports:
            assert reports[run_id] in synced.stderr, (case, synced.stderr)
            assert quarantined.read_bytes() == expected[run_id, "bytes"], case
            assert "not intact records" in quarantined.with_name("00000001.wal.note").read_text(), case
        else:  # cut at a record boundary: nothing in the file is damaged, nothing to report
            assert not quarantined.exists(), case
    assert streams_left(pulse_dir) == []


def test_a_record_that_rots_after_it_was_spooled_is_never_sent_and_the_rest_are(emitter_env, tmp_path):
    """The transport reads records back from disk: each is checked again there."""
    from emitter.spool import Spool
    from emitter.transport import Transport

    project = f"readback-{uuid.uuid4().hex[:6]}"
    [(run_id, stream)] = write_runs(tmp_path / "pulse", project, 1).items()
    segment = stream / "00000001.wal"
    data = segment.read_bytes()
    bounds = layout(data)
    spool = Spool(stream, create=False)  # opened (and verified) before the byte flips
    start, end = bounds[2]
    with open(segment, "r+b") as f:
        f.seek((start + HEADER_BYTES + end) // 2)
        f.write(bytes([data[(start + HEADER_BYTES + end) // 2] ^ 0xFF]))
    transport = Transport(spool, emitter_env.address, replay=True)
    transport.start()
    assert transport.close(60)
    spool.close()
    assert stored(emitter_env, project, run_id) == set().union(
        *(points_of(data, s, e) for j, (s, e) in enumerate(bounds) if j != 2))
    assert [(name, d.seq) for name, d in spool.damage] == [("00000001.wal", 3)]
    assert (tmp_path / "pulse" / "quarantine" / stream.name / "00000001.wal").exists()


ROTTING_TRAINER = """
import json, os, sys, emitter
run = emitter.init(project=os.environ["FAULT_PROJECT"])
run._batcher.flush(30)  # the run's start in a record of its own
for chunk in range(4):
    for step in range(chunk * 5, chunk * 5 + 5):
        emitter.log({f"k{j}": step * 10 + j for j in range(3)}, step=step)
    run._batcher.flush(30)  # one record per chunk
print("SPOOLED", run.id, run.spool.directory, flush=True)
sys.stdin.readline()
emitter.finish()
print("DONE", json.dumps({"corrupt": run.transport.corrupt_batches}), flush=True)
"""


def test_a_record_that_rots_in_a_live_trainers_spool_is_skipped_quietly_and_the_rest_stream(fresh_ingest, tmp_path):
    """The server is away while the trainer spools; a record rots on disk; the server comes back.
    The stream skips that record without aborting the call (no gRPC traceback) and stores the rest."""
    project = f"rot-live-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "PULSE_DIR": str(tmp_path / "pulse"), "PULSE_SERVER": fresh_ingest.address,
           "PULSE_SYSTEM_INTERVAL": "0", "PULSE_CONSOLE": "off", "PULSE_FINISH_TIMEOUT": "90",
           "FAULT_PROJECT": project}
    trainer = subprocess.Popen([sys.executable, "-c", ROTTING_TRAINER], env=env, cwd=ROOT, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, run_id, directory = trainer.stdout.readline().split()
    segment = Path(directory) / "00000001.wal"
    data = segment.read_bytes()
    bounds = layout(data)
    with_points = [(s, e) for s, e in bounds if points_of(data, s, e)]
    assert len(with_points) == 4, bounds
    start, end = with_points[1]
    at = (start + HEADER_BYTES + end) // 2
    with open(segment, "r+b") as f:  # the trainer verified it when it wrote it; now it rots
        f.seek(at)
        f.write(bytes([data[at] ^ 0xFF]))
    fresh_ingest.start()
    out, err = trainer.communicate("\n", timeout=300)
    assert trainer.returncode == 0, err
    assert "Exception iterating requests" not in err and "Traceback" not in err, err
    assert err.count("when read back; it is not sent") == 1, err  # said once, by the spool
    assert json.loads(out.split("DONE ", 1)[1]) == {"corrupt": 1}
    assert stored(fresh_ingest, project, run_id) == set().union(
        *(points_of(data, s, e) for s, e in with_points if s != start))
    assert (tmp_path / "pulse" / "quarantine" / segment.parent.name / "00000001.wal").exists()


def test_a_spool_written_by_the_previous_release_still_syncs(emitter_env, tmp_path):
    """Segments of the format before resync markers: `seq | length | crc32(payload) | payload`."""
    from emitter.encode import Encoder

    project, run_id = f"legacy-{uuid.uuid4().hex[:6]}", "old"
    encoder = Encoder(project, run_id, f"{run_id}.0123456789ab")
    batches = [encoder.encode([("start", {"name": "old", "created_at_us": time.time_ns() // 1000})])]
    batches += [encoder.encode([(step, time.time_ns() // 1000, {"k0": step * 10.0, "k1": step * 10.0 + 1})])
                for step in range(20)]
    stream = tmp_path / "pulse" / "spool" / encoder.stream_id
    stream.mkdir(parents=True)
    (stream / "00000001.wal").write_bytes(b"".join(struct.pack("<QII", seq, len(b), zlib.crc32(b)) + b
                                                   for seq, b in batches))
    synced = sync(tmp_path / "pulse", emitter_env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert stored(emitter_env, project, run_id) == {(f"k{j}", step) for step in range(20) for j in range(2)}
    assert streams_left(tmp_path / "pulse") == []


# -- concurrent syncs --------------------------------------------------------------


def test_two_pulse_syncs_of_one_spool_both_exit_cleanly_and_store_every_point_once(emitter_env, tmp_path):
    from emitter.overflow import Overflow

    project = f"twosyncs-{uuid.uuid4().hex[:6]}"
    pulse_dir = tmp_path / "pulse"
    runs = write_runs(pulse_dir, project, 12)
    for run_id, stream in list(runs.items())[::3]:  # records spilled past the queue bound, too
        ts = time.time_ns() // 1000
        Overflow(stream, project, run_id, stream.name).write(
            [(step, ts, {f"k{j}": float(step * 10 + j) for j in range(3)}) for step in range(100, 110)])
    env = {**os.environ, "PULSE_DIR": str(pulse_dir), "PULSE_SERVER": emitter_env.address}
    syncs = [subprocess.Popen([sys.executable, "-m", "pulse.cli", "sync"], env=env, cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in syncs]
    for p, (out, err) in zip(syncs, outputs):
        assert p.returncode == 0, out + err
        assert "Traceback" not in err, err
    spilled = {run_id for run_id in list(runs)[::3]}
    for run_id in runs:
        steps = range(110) if run_id in spilled else range(20)
        want = {(f"k{j}", s) for s in steps for j in range(3) if s < 20 or s >= 100}
        assert stored(emitter_env, project, run_id) == want, run_id
    assert streams_left(pulse_dir) == []


WIDE_SPILLER = """
import os, signal, emitter
run = emitter.init(project=os.environ["FAULT_PROJECT"])
run._batcher.flush(30)  # the run's start is spooled; every log() below spills (a queue bound of 0)
print("RUN", run.id, flush=True)
emitter.log({f"{'w' * 180}/{i:06d}": i * 0.5 for i in range(200_000)})  # about 42 MB encoded
for step in range(1, 512):  # the 512th spilled record writes the overflow file, on this thread
    emitter.log({"small": float(step)})
os.kill(os.getpid(), signal.SIGKILL)  # before the sender takes the file: it is left for `pulse sync`
"""


def test_a_log_wider_than_the_servers_batch_limit_spilled_past_the_queue_is_synced_whole(fresh_ingest, tmp_path):
    """Spilled records are written in batches within the live sender's byte budget, so the
    overflow file `pulse sync` uploads holds no batch the server refuses for its size."""
    from emitter.overflow import TAKING
    from emitter.spool import OVERFLOW

    project = f"wide-spill-{uuid.uuid4().hex[:6]}"
    for attempt in range(3):  # the sender may take the file in the instant before the kill: then again
        pulse_dir = tmp_path / f"pulse{attempt}"
        env = {"PULSE_DIR": str(pulse_dir), "PULSE_SERVER": fresh_ingest.address, "PULSE_QUEUE_MAX_VALUES": "0",
               "PULSE_SYSTEM_INTERVAL": "0", "PULSE_CONSOLE": "off", "FAULT_PROJECT": project}
        killed = run_script(WIDE_SPILLER, env)  # the server is down: nothing is acknowledged
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        [stream] = (pulse_dir / "spool").iterdir()
        # Taken but not yet removed (TAKING) is left for `pulse sync` just the same.
        if (stream / OVERFLOW).exists() or (stream / TAKING).exists():
            break
    else:
        pytest.fail("the sender took the overflow file before each kill")
    run_id = killed.stdout.split("RUN ")[1].split()[0]

    fresh_ingest.start()
    synced = sync(pulse_dir, fresh_ingest)

    assert synced.returncode == 0, synced.stdout + synced.stderr
    counts = fresh_ingest.query(
        "SELECT countIf(step = 0) AS wide, countIf(key = 'small') AS small, "
        "countIf(step = 0 AND value != toUInt32(substring(key, 182, 6)) * 0.5) AS wrong "
        "FROM metrics FINAL WHERE project = {p:String} AND run_id = {r:String}", p=project, r=run_id)[0]
    assert counts == {"wide": 200_000, "small": 511, "wrong": 0}
    assert not (pulse_dir / "rejected").exists(), sorted((pulse_dir / "rejected").rglob("*"))
    assert streams_left(pulse_dir) == []


# -- no pickle --------------------------------------------------------------------


class _Payload:
    """What a hostile overflow.pkl holds: unpickling it runs a command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_overflow_pkl_is_never_unpickled_and_stays_where_it_is(emitter_env, tmp_path):
    project = f"pickle-{uuid.uuid4().hex[:6]}"
    pulse_dir = tmp_path / "pulse"
    [(run_id, stream)] = write_runs(pulse_dir, project, 1).items()
    marker = tmp_path / "PWNED"
    data = pickle.dumps((project, run_id, [_Payload(marker)]))
    planted = struct.pack("<I", len(data)) + data  # the previous release's overflow framing
    orphan = pulse_dir / "spool" / "copied.000000000000"  # a spool directory copied from elsewhere
    orphan.mkdir()
    for directory in (stream, orphan):
        (directory / "overflow.pkl").write_bytes(planted)

    synced = sync(pulse_dir, emitter_env)

    assert not marker.exists(), "pulse sync executed a pickle"
    assert synced.returncode == 1, synced.stdout + synced.stderr  # records left behind: not a clean sync
    assert synced.stderr.count("legacy overflow.pkl not loaded: pickle files can execute code") == 2, synced.stderr
    for directory in (stream, orphan):
        assert (directory / "overflow.pkl").read_bytes() == planted
    assert stored(emitter_env, project, run_id) == {(f"k{j}", s) for s in range(20) for j in range(3)}


# -- a full disk ------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MB tmpfs, to fill up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a 1 MB tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> None:
    with open(disk / "filler", "wb", buffering=0) as f:
        while True:
            try:
                f.write(b"\0" * 65536)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return


FULL_DISK_TRAINER = """
import json, os, sys, emitter
run = emitter.init(project=os.environ["FAULT_PROJECT"])
print("RUN", run.id, flush=True)
raised = []
def phase(first, last):
    for step in range(first, last):
        try:
            emitter.log({f"k{j}": step * 10 + j for j in range(10)}, step=step)
        except Exception as exc:  # what this test is about: log() never raises
            raised.append(repr(exc))
        if step % 10 == 9:
            run._batcher.flush(30)  # a spool append (and an overflow spill) every 10 steps
phase(0, 100)
print("FILL", flush=True); sys.stdin.readline()
phase(100, 300)
print("FREE", flush=True); sys.stdin.readline()
phase(300, 400)
emitter.finish()
print("DONE", json.dumps({"raised": raised, **run.stats()}), flush=True)
"""


@pytest.mark.parametrize("mode", ["online", "offline"])
def test_a_full_disk_drops_points_loudly_never_raises_and_writing_resumes_when_space_returns(
        small_disk, fresh_ingest, mode):
    project = f"enospc-{mode}-{uuid.uuid4().hex[:6]}"
    # A queue of 50 values: half of every 10 steps spills to the overflow file on the training thread.
    env = {**os.environ, "PULSE_DIR": str(small_disk), "PULSE_MODE": mode, "PULSE_SERVER": fresh_ingest.address,
           "PULSE_QUEUE_MAX_VALUES": "50", "PULSE_SYSTEM_INTERVAL": "0", "PULSE_FINISH_TIMEOUT": "90",
           "FAULT_PROJECT": project}
    trainer = subprocess.Popen([sys.executable, "-c", FULL_DISK_TRAINER], env=env, cwd=ROOT, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run_id = trainer.stdout.readline().split()[1]
    assert trainer.stdout.readline().strip() == "FILL"
    fill(small_disk)
    trainer.stdin.write("\n")
    trainer.stdin.flush()
    assert trainer.stdout.readline().strip() == "FREE"
    (small_disk / "filler").unlink()
    fresh_ingest.start()  # online: the run streams what it spooled; offline: pulse sync uploads it
    trainer.stdin.write("\n")
    trainer.stdin.flush()
    out, err = trainer.communicate(timeout=300)
    assert trainer.returncode == 0, err
    stats = json.loads(out.split("DONE ", 1)[1])
    assert stats["raised"] == []
    assert stats["spool_write_failures"] > 0 and stats["overflow_write_failures"] > 0, stats
    for what, failures in (("the spool", stats["spool_write_failures"]),
                           ("the overflow file", stats["overflow_write_failures"])):
        reports = err.count(f"pulse: could not write to {what}")
        assert 1 <= reports < max(failures, 2), (what, reports, failures, err)  # once, then rate-limited
        assert f"pulse: writes to {what}" in err and "resumed" in err, err
    if mode == "offline":
        synced = sync(small_disk, fresh_ingest)
        assert synced.returncode == 0, synced.stdout + synced.stderr
    else:
        wait_for(lambda: (fresh_ingest.run_row(project, run_id) or {}).get("state") == "finished", 30,
                 what="the run to finish")
    points = stored(fresh_ingest, project, run_id)
    # Before the disk filled and after it had room again: every point; while it was full: what fit.
    assert {(f"k{j}", s) for s in [*range(100), *range(300, 400)] for j in range(10)} <= points
    # Nothing is lost silently: every point logged is stored or counted as dropped, and finish() says so.
    assert len(points) + stats["disk_dropped_points"] == 4000, stats
    assert f"{stats['disk_dropped_points']:,} disk full" in err, err
    assert streams_left(small_disk) == []
    assert not (small_disk / "quarantine").exists()  # appends were whole or nothing: no damage anywhere


@pytest.fixture
def ext4_disk(tmp_path):
    """A real 8 MB ext4 file system on a loop device: it has append-only files (chattr +a)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a loop device needs root")
    image, disk = tmp_path / "ext4.img", tmp_path / "ext4"
    disk.mkdir()
    with open(image, "wb") as f:
        f.truncate(8 << 20)
    made = subprocess.run(["mkfs.ext4", "-q", str(image)], capture_output=True, text=True)
    mounted = made.returncode or subprocess.run(["mount", "-o", "loop", str(image), str(disk)], capture_output=True,
                                                text=True).returncode
    if mounted:
        pytest.skip("cannot make and mount an ext4 loop device here")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_record_torn_by_a_full_disk_that_cannot_be_truncated_away_ends_its_segment(ext4_disk):
    """The worst case: the disk cuts a record short and truncating it away fails too (here: an
    append-only file). That segment is never appended to again; what was whole reads back whole."""
    from emitter.spool import Spool, SpoolWriteError

    directory = ext4_disk / "spool" / "run.stream"
    spool = Spool(directory)
    spool.append(1, b"a" * 100)
    if subprocess.run(["chattr", "+a", str(directory / "00000001.wal")], capture_output=True).returncode:
        pytest.skip("chattr +a is not supported here")
    try:
        fill(ext4_disk)
        with pytest.raises(SpoolWriteError):
            spool.append(2, os.urandom(1 << 20))
        assert (spool.write_failures, spool.dropped_records) == (1, 1)
        (ext4_disk / "filler").unlink()
        spool.append(3, b"c" * 100)
    finally:
        subprocess.run(["chattr", "-a", str(directory / "00000001.wal")], check=True)
    assert sorted(p.name for p in directory.glob("*.wal")) == ["00000001.wal", "00000002.wal"]
    spool.close(remove_if_empty=False)
    reopened = Spool(directory, create=False)
    assert [reopened.read(reopened.after(s, 0)) for s in (0, 1)] == [b"a" * 100, b"c" * 100]
    assert [(name, d.kind) for name, d in reopened.damage] == [("00000001.wal", "cut short")]
    reopened.ack(3)
    reopened.close()
    assert (ext4_disk / "quarantine" / "run.stream" / "00000001.wal").exists()
    assert not directory.exists()
