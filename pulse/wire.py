"""Names on the wire that the .proto files cannot hold: the gRPC metadata keys of the contract.

The emitter sends and reads these, the ingest reads and sends them, and a load balancer in front
of the ingest may route on them (deploy/cluster/envoy.yaml), so each is spelled once, here.
Standard library only (nothing, in fact): both `emitter` and `ingest` import this.

Example:
    from pulse.wire import RETRY_AFTER_MS
    trailers = ((RETRY_AFTER_MS, "250"),)
"""

from __future__ import annotations

# Trailer of an UNAVAILABLE abort under backpressure: milliseconds the client should wait.
RETRY_AFTER_MS = "retry-after-ms"
# Trailer of an INVALID_ARGUMENT stream abort: the seq of the batch refused as a whole (when readable).
REFUSED_SEQ = "x-pulse-refused-seq"
# Trailer of a FAILED_PRECONDITION UploadBlob abort: how many bytes of the blob the server holds.
COMMITTED_OFFSET = "committed-offset"
# Request header of a telemetry stream: `project/run_id`, percent-encoded, so a balancer pins a run's
# stream to one ingest replica.
RUN_ROUTE = "x-pulse-run"
