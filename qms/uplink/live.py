"""A point's live state for the city view, computed from its own log.

The uplink replays the day's events into a QueueCore of its own (the service does the
same at start-up) and reads from it what the service's retained `state/service/<id>`
says: people waiting, estimated wait, open or not. No MQTT needed, so the uplink does
not depend on the local broker either.
"""
from __future__ import annotations

import msgspec

from qms.config.site import SiteConfig
from qms.core.past_days import service_times_from_history
from qms.core.queue import QueueCore
from qms.protocol.messages import AnyEvent

_dec = msgspec.json.Decoder(AnyEvent)


class LiveState:
    def __init__(self, cfg: SiteConfig):
        self.cfg = cfg
        self.core = QueueCore(cfg)
        self.applied = 0            # the last seq applied

    def start(self, now: int, day_events: list[bytes], last_seq: int, past_events: list[bytes] = ()) -> None:
        """Today's events (and the past week's, which seed the estimates as in the service)."""
        self.core = QueueCore(self.cfg)
        self.core.roll(now)
        if past_events:
            self.core.estimator.learn_history(service_times_from_history(self._decoded(past_events)))
        for data in day_events:
            self._apply(data)
        self.applied = last_seq

    @staticmethod
    def _decoded(rows: list[bytes]):
        for data in rows:
            try:
                yield _dec.decode(data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue

    def _apply(self, data: bytes) -> None:
        try:
            self.core.apply(_dec.decode(data))
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError, AttributeError):
            pass                    # an event this version cannot read: the log keeps it anyway

    def feed(self, rows) -> None:
        for seq, _day, _at, _type, data in rows:
            if seq > self.applied:
                self._apply(bytes(data))
                self.applied = seq

    def view(self, now: int) -> dict:
        core, cfg = self.core, self.cfg
        core.roll(now)
        services = []
        with core.estimator.batch():
            for s in cfg.services:
                v = core.service_view(s.id, now)
                services.append({"id": s.id, "name_vi": s.name_vi, "name_en": s.name_en,
                                 "waiting": v["waiting"], "est_wait_s": v["est_wait_s"], "open": v["open"]})
        summary = core.summary_view(now)
        return {"at": now, "day": core.day, "name": cfg.site.name, "center": cfg.site.center,
                "address": cfg.site.address, "services": services,
                "counters_open": summary["counters_open"], "waiting": summary["waiting"]}
