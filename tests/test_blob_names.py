"""Media blobs are named with their medium's file ending (the shared media definition's), so a
blob store browsed by hand, or an S3 bucket listed, opens each file in the right program."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

import emitter
from ingest.blobs import blob_name
from pulse.media_schema import EXTENSIONS, MIMES


def test_every_mime_of_the_media_definition_has_its_own_ending_and_other_bytes_are_bin():
    sha = "ab" * 32
    for kind, mimes in MIMES.items():
        for mime in mimes:
            name = blob_name(sha, mime)
            assert name.startswith(f"ab/{sha}.") and not name.endswith(".bin"), (kind, mime, name)
            assert name.endswith(".json") or EXTENSIONS[name[len(f"ab/{sha}"):]] == mime, (kind, mime, name)
    assert blob_name(sha, "image/jpeg") == f"ab/{sha}.jpg"
    assert blob_name(sha, "application/octet-stream") == f"ab/{sha}.bin"  # artifact files
    assert blob_name(sha, "text/x-unknown") == f"ab/{sha}.bin"


def test_audio_html_point_cloud_and_table_blobs_reach_the_store_under_their_endings(emitter_env):
    project = f"blob-names-{uuid.uuid4().hex[:8]}"
    run = emitter.init(project=project)
    emitter.log({"audio": emitter.Audio(np.sin(np.linspace(0, 440, 8000)), sample_rate=8000),
                 "page": emitter.Html("<p>hello</p>", inject=False),
                 "cloud": emitter.Object3D(np.arange(30, dtype=float).reshape(10, 3)),
                 "scores": emitter.Table(columns=["a", "b"], data=[[1, 2.5], [3, 4.5]])})
    emitter.finish()
    rows = emitter_env.query("SELECT key, mime, uri FROM media WHERE project = {p:String} AND run_id = {r:String}",
                             p=project, r=run.id)
    endings = {r["key"]: r["uri"].rsplit("/", 1)[1].split(".", 1)[1] for r in rows}
    assert endings == {"audio": "wav", "page": "html", "cloud": "pts.json", "scores": "json"}, rows
    for r in rows:
        assert Path(unquote(urlparse(r["uri"]).path)).is_file(), r
