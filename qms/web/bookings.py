"""Booked numbers: a service, a day and a time window, reserved by an external booking system.

A booking is not in the queue yet: a ticket waiting for someone who is still at home
would be called in vain. The citizen checks in at a kiosk with the booking code; then the
service issues the ticket with its normal numbering (TicketRequest, source "booking",
the ticket id chosen at booking time so the tracking link works from the start). A
booking not checked in before its window ends expires.

Rules, checked when booking: a working day within `booking_days_ahead`; a window inside
the service's issuing hours (not past the cut-off); at most `booking_cap_percent` of the
service's daily cap booked, and never more than what is left of the cap today; at most
`booking_per_reference_per_day` bookings per citizen reference (an opaque hash chosen by
the integrator; we store only a hash of it). Persisted in SQLite (WAL, synchronous=FULL).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import msgspec

from qms.config.site import SiteConfig, minutes_of
from qms.config.web import ticket_url
from qms.mqtt.outbox import new_id
from qms.protocol.booking_codes import CODE_ALPHABET, CODE_LEN, NotABookingCode, display_code, normalize_code
from qms.web.errors import WebError, bad_request

HHMM = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Id = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS bookings (
    code TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL UNIQUE,
    client TEXT NOT NULL,
    service TEXT NOT NULL,
    priority TEXT,
    day TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    ref_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    state TEXT NOT NULL,            -- booked | checked_in | expired | cancelled
    number INTEGER,
    checked_in_at INTEGER
);
CREATE INDEX IF NOT EXISTS bookings_day_service ON bookings(day, service);
CREATE INDEX IF NOT EXISTS bookings_ref_day ON bookings(ref_hash, day);
"""
_COLS = ("code", "ticket_id", "client", "service", "priority", "day", "start_ms", "end_ms",
         "ref_hash", "created_at", "state", "number", "checked_in_at")


class BookingRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    service: Id
    date: Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}$")]
    window_from: HHMM = msgspec.field(name="from")
    window_to: HHMM = msgspec.field(name="to")
    # an opaque hash of the citizen (>= 128 bits of hex): never a name or an ID number
    reference: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32,128}$")]
    priority: Id | None = None


class CheckIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What a kiosk sends: the code as typed or scanned, and which kiosk it is."""
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    device: Id | None = None


class Booking(msgspec.Struct, kw_only=True):
    code: str
    ticket_id: str
    client: str
    service: str
    priority: str | None
    day: str
    start_ms: int
    end_ms: int
    ref_hash: str
    created_at: int
    state: str
    number: int | None = None
    checked_in_at: int | None = None


def code_from_request(text: str) -> str:
    """The canonical booking code of a request's `code`; a 400 on anything else."""
    try:
        return normalize_code(text)
    except NotABookingCode as e:
        raise bad_request(str(e)) from None


def _ref_hash(reference: str) -> str:
    return hashlib.sha256(b"qms-booking-ref:" + reference.encode()).hexdigest()


def _refused(status: int, code: str, vi: str, en: str) -> WebError:
    return WebError(status, code, vi, en)


class BookingStore:
    def __init__(self, path: str | Path, cfg: SiteConfig, clock: Callable[[], int]):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.cfg, self.web, self.clock = cfg, cfg.web, clock
        self._lock = threading.Lock()
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    # ------------------------------------------------------------ helpers
    def _row(self, where: str, args: tuple) -> Booking | None:
        row = self.conn.execute(f"SELECT {', '.join(_COLS)} FROM bookings WHERE {where}", args).fetchone()
        return Booking(**dict(zip(_COLS, row))) if row else None

    def _local_ms(self, day: dt.date, hhmm: str) -> int:
        m = minutes_of(hhmm)
        t = dt.datetime.combine(day, dt.time(m // 60, m % 60), self.cfg.tz)
        return int(t.timestamp() * 1000)

    def _check_window(self, req: BookingRequest, now: int) -> tuple[dt.date, int, int]:
        try:
            day = dt.date.fromisoformat(req.date)
        except ValueError:
            raise bad_request(f"`date` {req.date!r} is not a calendar date") from None
        try:
            s = self.cfg.service(req.service)
        except KeyError:
            raise _refused(404, "unknown_service", f"Không có lĩnh vực {req.service}.",
                           f"Unknown service {req.service!r}.") from None
        if req.priority is not None and req.priority not in {p.id for p in self.cfg.priority_classes}:
            raise _refused(422, "unknown_priority", f"Không có đối tượng ưu tiên {req.priority}.",
                           f"Unknown priority class {req.priority!r}.")
        today = dt.datetime.fromtimestamp(now / 1000, self.cfg.tz).date()
        if day < today or (day - today).days > self.web.booking_days_ahead:
            raise _refused(422, "bad_date", f"Chỉ đặt lịch từ hôm nay đến {self.web.booking_days_ahead} ngày tới.",
                           f"Bookings are taken from today up to {self.web.booking_days_ahead} days ahead.")
        if day.isoweekday() not in self.cfg.hours.weekdays:
            raise _refused(409, "closed_day", "Trung tâm không làm việc vào ngày này.",
                           "The center is closed on that day.")
        open_m = minutes_of(s.open or self.cfg.hours.open)
        stop_m = minutes_of(s.close or self.cfg.hours.close) - self.cfg.hours.cutoff_minutes
        a, b = minutes_of(req.window_from), minutes_of(req.window_to)
        stop = f"{stop_m // 60:02d}:{stop_m % 60:02d}"
        opening = f"{open_m // 60:02d}:{open_m % 60:02d}"
        if a < open_m or b > stop_m:
            raise _refused(422, "bad_window", f"Khung giờ phải nằm trong giờ cấp số {opening}–{stop}.",
                           f"The window must lie within issuing hours {opening}-{stop}.")
        if b - a < self.web.booking_min_window_minutes:
            raise _refused(422, "bad_window",
                           f"Khung giờ phải dài ít nhất {self.web.booking_min_window_minutes} phút.",
                           f"The window must be at least {self.web.booking_min_window_minutes} minutes long.")
        start, end = self._local_ms(day, req.window_from), self._local_ms(day, req.window_to)
        if end <= now:
            raise _refused(422, "bad_window", "Khung giờ này đã qua.", "That window has already passed.")
        return day, start, end

    # ------------------------------------------------------------ operations
    def create(self, client: str, req: BookingRequest, issued_today: Callable[[str], int]) -> Booking:
        now = self.clock()
        day, start, end = self._check_window(req, now)
        s = self.cfg.service(req.service)
        ref = _ref_hash(req.reference)
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                b = self._create_locked(client, req, day.isoformat(), start, end, ref, s, now, issued_today)
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        return b

    def _create_locked(self, client, req, day, start, end, ref, s, now, issued_today) -> Booking:
        per_ref = self.conn.execute(
            "SELECT count(*) FROM bookings WHERE ref_hash = ? AND day = ? AND state != 'cancelled'",
            (ref, day)).fetchone()[0]
        if per_ref >= self.web.booking_per_reference_per_day:
            n = self.web.booking_per_reference_per_day
            raise _refused(409, "reference_limit", f"Mỗi người chỉ được đặt tối đa {n} số mỗi ngày.",
                           f"At most {n} bookings per person per day.")
        active = dict(self.conn.execute(
            "SELECT state, count(*) FROM bookings WHERE day = ? AND service = ? "
            "AND state IN ('booked', 'checked_in') GROUP BY state", (day, req.service)).fetchall())
        quota = s.daily_cap * self.web.booking_cap_percent // 100
        outstanding = active.get("booked", 0)
        taken_today = issued_today(req.service) if day == self._today(now) else 0
        if outstanding + active.get("checked_in", 0) >= quota or taken_today + outstanding >= s.daily_cap:
            raise _refused(409, "booking_cap", f"Lĩnh vực {s.name_vi} đã hết số đặt trước cho ngày này.",
                           f"{s.name_en}: no more bookable numbers on that day.")
        while True:
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LEN))
            if self._row("code = ?", (code,)) is None:
                break
        b = Booking(code=code, ticket_id=new_id(), client=client, service=req.service,
                    priority=req.priority, day=day, start_ms=start, end_ms=end, ref_hash=ref,
                    created_at=now, state="booked")
        self.conn.execute(f"INSERT INTO bookings({', '.join(_COLS)}) VALUES ({', '.join('?' * len(_COLS))})",
                          tuple(getattr(b, c) for c in _COLS))
        return b

    def _today(self, now: int) -> str:
        return dt.datetime.fromtimestamp(now / 1000, self.cfg.tz).date().isoformat()

    def get(self, code: str) -> Booking | None:
        with self._lock:
            b = self._row("code = ?", (code,))
        return self._expire_if_due(b)

    def by_ticket(self, ticket_id: str) -> Booking | None:
        with self._lock:
            b = self._row("ticket_id = ?", (ticket_id,))
        return self._expire_if_due(b)

    def _expire_if_due(self, b: Booking | None) -> Booking | None:
        if b is not None and b.state == "booked" and self.clock() >= b.end_ms:
            self.expire_due()
            b.state = "expired"
        return b

    def expire_due(self) -> int:
        with self._lock:
            return self.conn.execute("UPDATE bookings SET state = 'expired' WHERE state = 'booked' "
                                     "AND end_ms <= ?", (self.clock(),)).rowcount

    def cancel(self, code: str, client: str) -> Booking:
        b = self.get(code)
        if b is None or b.client != client:
            raise _refused(404, "not_found", "Không tìm thấy mã đặt lịch.", "Booking not found.")
        if b.state != "booked":
            raise _refused(409, f"booking_{b.state}", "Không thể huỷ: mã đặt lịch không còn hiệu lực.",
                           f"Cannot cancel: the booking is {b.state}.")
        with self._lock:
            self.conn.execute("UPDATE bookings SET state = 'cancelled' WHERE code = ? AND state = 'booked'",
                              (code,))
        b.state = "cancelled"
        return b

    def checkable(self, code: str) -> Booking:
        """The booking if it may be checked in now, else a clear refusal."""
        b = self.get(code)
        now = self.clock()
        if b is None:
            raise _refused(404, "unknown_code", "Mã đặt lịch không đúng. Xin kiểm tra lại.",
                           "Unknown booking code. Please check it.")
        if b.state == "checked_in":
            return b                       # the same code again: the same ticket (idempotent)
        if b.state == "expired":
            raise _refused(410, "booking_expired",
                           "Mã đặt lịch đã hết hạn (quá khung giờ đã đặt). Xin mời lấy số mới.",
                           "This booking has expired (its time window is over). Please take a new number.")
        if b.state == "cancelled":
            raise _refused(410, "booking_cancelled", "Mã đặt lịch đã bị huỷ.", "This booking was cancelled.")
        opens = b.start_ms - self.web.checkin_early_minutes * 60_000
        if now < opens:
            t = dt.datetime.fromtimestamp(opens / 1000, self.cfg.tz)
            raise _refused(409, "too_early", f"Chưa đến giờ xác nhận. Xin mời quay lại lúc {t:%H:%M} ngày {t:%d/%m}.",
                           f"Too early to check in. Please come back at {t:%H:%M} on {t:%d/%m}.")
        return b

    def mark_checked_in(self, code: str, number: int, at: int) -> None:
        with self._lock:
            self.conn.execute("UPDATE bookings SET state = 'checked_in', number = ?, checked_in_at = ? "
                              "WHERE code = ?", (number, at, code))


def booking_view(b: Booking, cfg: SiteConfig) -> dict:
    tz = cfg.tz

    def hhmm(ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, tz).strftime("%H:%M")

    return {"code": display_code(b.code), "qr_text": b.code, "ticket_id": b.ticket_id,
            "tracking_url": ticket_url(cfg.site.public_url, b.ticket_id) if cfg.site.public_url else None,
            "service": b.service, "priority": b.priority, "date": b.day, "from": hhmm(b.start_ms),
            "to": hhmm(b.end_ms), "state": b.state, "number": b.number,
            "checked_in_at": b.checked_in_at}
