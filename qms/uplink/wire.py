"""What a point's uplink and the center's ingest say to each other (HTTP, JSON).

    GET  /v1/sites/<site>/position       -> {"stored": N, "last_sha256": ...}  "where are you?"
    PUT  /v1/sites/<site>/config          body: the site's TOML -> {"stored": N}
    POST /v1/sites/<site>/events          body: Batch           -> {"stored": N}

A refusal is a 4xx with {"error": code, "message": ...} (docs/city.md, "What the ingest
answers"); `center_mismatch` (422: the point's [site] center is not the one the city
registered it under) also has `message_vi` and `message_en`: nothing is stored until a
person makes them agree, and the point keeps its log and sends it then.

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


class Refusal(msgspec.Struct, kw_only=True):
    """A refused request's answer (4xx): a code, and for one a person at the point must act
    on (e.g. `center_mismatch`) the message in Vietnamese and English."""
    error: str = ""
    message: str = ""
    message_vi: str | None = None
    message_en: str | None = None
    stored: int | None = None


# refusals a person must resolve (the uplink tries again only every REFUSED_BACKOFF_S)
NEEDS_A_PERSON = ("center_mismatch", "bad_config")

batch_encoder = msgspec.json.Encoder()
batch_decoder = msgspec.json.Decoder(Batch)
stored_decoder = msgspec.json.Decoder(Stored)
refusal_decoder = msgspec.json.Decoder(Refusal)
