"""Artifact blobs on the ingest: resumable uploads into the blob store, and reads back out of it.

An upload goes to a partial file, `<partial dir>/<project key>-<sha256>.part`,
appended in order and hashed as it grows; once its size is reached it is
fsynced and its sha256 checked, and only then does it become the blob (renamed
into the directory store, or put into S3 and deleted). A partial survives an
ingest that is killed or restarted: its length is the offset the next upload
resumes from (HaveBlobs says it). The partial is the project's own (its name
holds a key of the project), so no project resumes, and so claims, bytes another
sent. One call at a time writes a partial (an flock on it, which also holds
between ingest processes on one machine); another gets UploadBusy and retries.

The partial directory is `<blob dir>/.partial` for a directory store (the same
filesystem, so the rename is atomic), `PULSE_UPLOAD_DIR` (default
`<tmp>/pulse-uploads`) for S3. Blobs are `<sha256>.bin` beside the media's.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from .blobs import BlobStore, DirectoryBlobStore, S3BlobStore

log = logging.getLogger(__name__)
OCTET = "application/octet-stream"
CHUNK_BYTES = 4 << 20
FREE_SPACE_MARGIN = 256 << 20  # an upload is refused when it would leave the disk with less
REMEMBERED_HASHES = 256  # running sha256s of partials a stream let go (a reconnect resumes without rereading)


class UploadBusy(Exception):
    """Another call is writing this blob right now."""


class NoSpace(OSError):
    """The partial directory's disk cannot take the rest of the blob."""


class Partial:
    """One blob being received: its file, held under an exclusive lock, its length and running sha256."""

    def __init__(self, path: Path, sha256: str, size: int, hashes: OrderedDict, hashes_lock: threading.Lock) -> None:
        self.path, self.sha256, self.size = path, sha256, size
        self._hashes, self._hashes_lock = hashes, hashes_lock
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise UploadBusy(f"blob {sha256} is being uploaded by another call; try again shortly") from None
        self.length = os.fstat(self._fd).st_size
        if self.length > size:  # not this blob's bytes: start over
            os.ftruncate(self._fd, 0)
            self.length = 0
        with hashes_lock:
            remembered = hashes.pop(path, None)
        if remembered is not None and remembered[0] == self.length:
            self._hash = remembered[1]
        else:  # a partial left by an earlier process: hash what it holds
            self._hash = hashlib.sha256()
            os.lseek(self._fd, 0, os.SEEK_SET)
            while block := os.read(self._fd, CHUNK_BYTES):
                self._hash.update(block)
        os.lseek(self._fd, self.length, os.SEEK_SET)
        self.resumed_at = self.length

    def write(self, data: bytes) -> None:
        """Append `data` to the file (the running hash is `hash`'s: the two may run at once, both free the GIL)."""
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def hash(self, data: bytes) -> None:
        self._hash.update(data)

    def wrote(self, n: int) -> None:
        """`write` and `hash` of n bytes are both done."""
        self.length += n

    def verify(self) -> bool:
        """Whole and hashing to its name: fsynced, True. Otherwise the bytes are dropped, False."""
        os.fsync(self._fd)
        if self.length == self.size and self._hash.hexdigest() == self.sha256:
            return True
        os.ftruncate(self._fd, 0)
        self.length, self._hash = 0, hashlib.sha256()
        return False

    def close(self, keep_hash: bool = True) -> None:
        """Let go of the file (the lock goes with it); remember the running hash for a resume."""
        if self._fd < 0:
            return
        if keep_hash and 0 < self.length < self.size:
            with self._hashes_lock:
                self._hashes[self.path] = (self.length, self._hash)
                while len(self._hashes) > REMEMBERED_HASHES:
                    self._hashes.popitem(last=False)
        os.close(self._fd)
        self._fd = -1


class BlobFiles:
    """The artifact side of a BlobStore: presence, resumable uploads, chunked reads."""

    def __init__(self, store: BlobStore, partial_dir: str | Path | None = None) -> None:
        if not isinstance(store, (DirectoryBlobStore, S3BlobStore)):
            raise TypeError(f"artifacts need a directory or S3 blob store, not {type(store).__name__}")
        self.store = store
        if partial_dir is None:
            partial_dir = (store.root / ".partial" if isinstance(store, DirectoryBlobStore) else
                           Path(os.environ.get("PULSE_UPLOAD_DIR") or Path(tempfile.gettempdir()) / "pulse-uploads"))
        self.partial_dir = Path(partial_dir)
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        self._hashes: OrderedDict = OrderedDict()
        self._hashes_lock = threading.Lock()

    def partial_path(self, project: str, sha256: str) -> Path:
        owner = hashlib.sha256(project.encode()).hexdigest()[:16]
        return self.partial_dir / f"{owner}-{sha256}.part"

    def has(self, sha256: str) -> bool:
        if isinstance(self.store, DirectoryBlobStore):
            return self.store.path(sha256, OCTET).is_file()
        return self.store.client.exists(self.store.key(sha256, OCTET))

    def offset(self, project: str, sha256: str) -> int:
        """Bytes an interrupted upload of this project left (0 for none)."""
        try:
            return self.partial_path(project, sha256).stat().st_size
        except FileNotFoundError:
            return 0

    def open_upload(self, project: str, sha256: str, size: int) -> Partial:
        partial = Partial(self.partial_path(project, sha256), sha256, size, self._hashes, self._hashes_lock)
        free = shutil.disk_usage(self.partial_dir).free
        if size - partial.length + FREE_SPACE_MARGIN > free:
            partial.close()
            raise NoSpace(f"the ingest's upload directory {self.partial_dir} has {free >> 20} MiB free; blob "
                          f"{sha256} needs {(size - partial.length) >> 20} MiB more")
        return partial

    def store_blob(self, partial: Partial) -> None:
        """Move a verified partial into the blob store (a rename, or an S3 upload) and let it go."""
        if isinstance(self.store, DirectoryBlobStore):
            target = self.store.path(partial.sha256, OCTET)
            target.parent.mkdir(exist_ok=True)
            os.replace(partial.path, target)  # the same content twice: either copy is the blob
            _fsync_dir(target.parent)
        else:
            key = self.store.key(partial.sha256, OCTET)
            if not self.store.client.exists(key):
                _s3_upload(self.store, key, partial.path)
            partial.path.unlink(missing_ok=True)
        partial.close(keep_hash=False)

    def read(self, sha256: str, offset: int = 0, chunk: int = CHUNK_BYTES) -> tuple[int, Iterator[bytes]]:
        """(size, chunks from `offset`) of a stored blob; FileNotFoundError if the store lacks it."""
        if isinstance(self.store, DirectoryBlobStore):
            path = self.store.path(sha256, OCTET)
            f = open(path, "rb")
            size = os.fstat(f.fileno()).st_size

            def chunks() -> Iterator[bytes]:
                with f:
                    f.seek(offset)
                    while block := f.read(chunk):
                        yield block
            return size, chunks()
        return _s3_read(self.store, self.store.key(sha256, OCTET), offset, chunk)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _s3_upload(store: S3BlobStore, key: str, path: Path) -> None:
    """A file into S3 through boto3's managed transfer (multipart past 8 MiB, a bounded buffer)."""
    client = store.client
    try:
        # pulse/s3.py keeps whole-object calls; a multi-GB blob needs boto3's transfer manager, on the same client.
        client._s3.upload_file(str(path), client.bucket, key, ExtraArgs={"ContentType": OCTET})
    except Exception as exc:  # boto3's S3UploadFailedError, botocore's errors: the upload is retried by the emitter
        raise OSError(f"PUT s3://{client.bucket}/{key}: {exc}") from exc


def _s3_read(store: S3BlobStore, key: str, offset: int, chunk: int) -> tuple[int, Iterator[bytes]]:
    from pulse.s3 import S3Error

    client = store.client
    try:
        head = client._call("HEAD", key, "head_object")
    except S3Error as exc:
        if exc.status == 404:
            raise FileNotFoundError(f"s3://{client.bucket}/{key}") from exc
        raise
    size = int(head["ContentLength"])
    if offset >= size:
        return size, iter(())
    body = client._call("GET", key, "get_object", Range=f"bytes={offset}-")["Body"]

    def chunks() -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(chunk)
        finally:
            body.close()
    return size, chunks()
