"""The service robot's extras: a greeting when someone arrives, and a dispenser.

`Greeter` decides when to greet: once per person (a new person is an arrival after
the sensor saw nobody for `person_gap_s`), never over a hall announcement (a call
holds greetings for `announce_hold_s`), and not at all if the person left before it
was quiet again. Sensor callbacks come from gpiozero's thread; `poll()` runs on the
kiosk's main loop and does the speaking.

`Dispenser` pulses a relay once per ticket and counts the stock in the kiosk's SQLite
file, so a refill by `qms kiosk refill` (another process) or over MQTT is seen at once
and the count survives a restart.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable

from qms.kiosk.voice import Speaker

log = logging.getLogger("qms.kiosk.robot")


class Greeter:
    def __init__(self, speaker: Speaker, text: str, person_gap_s: float = 8.0,
                 announce_hold_s: float = 8.0, clock: Callable[[], float] = time.monotonic):
        self.speaker, self.text = speaker, text
        self.person_gap_s, self.announce_hold_s = person_gap_s, announce_hold_s
        self.clock = clock
        self.lock = threading.Lock()
        self.present = False
        self.left_at = float("-inf")
        self.quiet_until = float("-inf")
        self.pending = False
        self.greetings = 0

    def presence(self, present: bool) -> None:
        now = self.clock()
        with self.lock:
            if present and not self.present:
                if now - self.left_at >= self.person_gap_s:
                    self.pending = True          # a new person
            elif not present and self.present:
                self.left_at = now
                self.pending = False             # gone before we could greet: stay quiet
            self.present = present

    def announcement(self) -> None:
        with self.lock:
            self.quiet_until = self.clock() + self.announce_hold_s

    def poll(self) -> bool:
        """Greet now if someone is waiting for it and the hall is quiet. True when it spoke."""
        with self.lock:
            if not (self.pending and self.present) or self.clock() < self.quiet_until:
                return False
            self.pending = False
            self.greetings += 1
        self.speaker.say(self.text)
        return True


_STOCK_SCHEMA = "CREATE TABLE IF NOT EXISTS robot_stock (id INTEGER PRIMARY KEY CHECK (id = 1), items INTEGER NOT NULL)"


class Stock:
    """Items left in the dispenser, in the kiosk's SQLite file (shared with `qms kiosk refill`)."""

    def __init__(self, conn: sqlite3.Connection, capacity: int, lock: threading.RLock | None = None):
        self.conn, self.capacity = conn, capacity
        self.lock = lock or threading.RLock()
        with self.lock:
            conn.execute(_STOCK_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO robot_stock(id, items) VALUES (1, ?)", (capacity,))

    def items(self) -> int:
        with self.lock:
            return self.conn.execute("SELECT items FROM robot_stock WHERE id = 1").fetchone()[0]

    def take_one(self) -> bool:
        with self.lock:
            cur = self.conn.execute("UPDATE robot_stock SET items = items - 1 WHERE id = 1 AND items > 0")
            return cur.rowcount == 1

    def refill(self, items: int | None = None) -> int:
        n = self.capacity if items is None else max(0, int(items))
        with self.lock:
            self.conn.execute("UPDATE robot_stock SET items = ? WHERE id = 1", (n,))
        return n


class Dispenser:
    def __init__(self, relay, stock: Stock, pulse_s: float = 0.5,
                 on_change: Callable[[int], None] | None = None):
        self.relay, self.stock, self.pulse_s = relay, stock, pulse_s
        self.on_change = on_change
        self.dispensed = 0

    def dispense(self) -> bool:
        """One item for one ticket. False (and no relay pulse) when the stock is out."""
        if not self.stock.take_one():
            log.warning("dispenser out of stock")
            self._changed()
            return False
        self.relay.blink(on_time=self.pulse_s, off_time=0.05, n=1, background=True)
        self.dispensed += 1
        self._changed()
        return True

    def _changed(self) -> None:
        if self.on_change:
            try:
                self.on_change(self.stock.items())
            except Exception:  # noqa: BLE001 - status publishing must not stop dispensing
                log.exception("stock status update failed")


def stock_state(items: int) -> str:
    return "out" if items <= 0 else ("low" if items <= 5 else "ok")
