"""What a point's uplink and the center's ingest say to each other (HTTP, JSON).

    GET  /v1/sites/<site>/position       -> {"stored": N, "last_sha256": ...}  "where are you?"
    PUT  /v1/sites/<site>/config          body: the site's TOML -> {"stored": N}
    POST /v1/sites/<site>/events          body: Batch           -> {"stored": N}

Every request carries `Authorization: Bearer <token>`, the site's own secret. `stored` is
the center's acknowledgement: every event 1..N of that site is durably stored. The point
sends from N+1 on; anything the center already has is ignored, and a batch that would leave
a gap (first seq > N+1) is refused with 409 and the same `stored`: the point sends again
from there. The center's copy of a log is therefore always a gap-free prefix of the point's.
"""
from __future__ import annotations

import msgspec

# one event as stored in the point's log: seq, day (ISO), at (Unix ms), type, data (JSON)
EventRow = tuple[int, str, int, str, msgspec.Raw]


class Batch(msgspec.Struct, kw_only=True):
    events: list[EventRow] = []
    # the point's live state (see qms.uplink.live); None: unchanged since the last batch
    live: dict | None = None


class Stored(msgspec.Struct, kw_only=True):
    stored: int
    # on GET position: SHA-256 of the center's copy of event `stored`, so that the point can
    # tell that both hold the same history before extending it
    last_sha256: str | None = None
    error: str | None = None
    message: str | None = None


batch_encoder = msgspec.json.Encoder()
batch_decoder = msgspec.json.Decoder(Batch)
stored_decoder = msgspec.json.Decoder(Stored)
