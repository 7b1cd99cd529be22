"""Booking rules against the example site's real hours (07:30-17:00, cut-off 15 min, Mon-Sat)."""
from __future__ import annotations

import hashlib

import msgspec
import pytest
from support.site import TEST_CONFIG, SiteClock

from qms.config.site import load_config
from qms.protocol.booking_codes import NotABookingCode, normalize_code
from qms.web.bookings import BookingRequest, BookingStore, code_from_request
from qms.web.errors import WebError

REF = hashlib.sha256(b"someone").hexdigest()


@pytest.fixture
def store(tmp_path):
    clock = SiteClock()           # Tuesday 2026-11-24, 09:00 in Vietnam
    s = BookingStore(tmp_path / "web.sqlite", load_config(TEST_CONFIG), clock)
    yield s
    s.close()


def req(**over) -> BookingRequest:
    body = {"service": "dat-dai", "date": "2026-11-24", "from": "10:00", "to": "11:00", "reference": REF, **over}
    return msgspec.convert(body, BookingRequest)


def refusal(store, issued: int = 0, **over) -> str | None:
    try:
        store.create("it", req(**over), lambda s: issued)
    except WebError as e:
        return e.code
    return None


def test_window_within_issuing_hours_and_working_days(store):
    assert refusal(store, **{"from": "07:00", "to": "08:00"}) == "bad_window"     # opens 07:30
    assert refusal(store, **{"from": "16:00", "to": "17:00"}) == "bad_window"     # cut-off 16:45
    assert refusal(store, date="2026-11-29") == "closed_day"                       # a Sunday
    assert refusal(store, date="2026-12-09") == "bad_date"                         # > 14 days ahead
    assert refusal(store, **{"from": "16:00", "to": "16:45"}) is None
    assert refusal(store, date="2026-11-28", reference="ab" * 16) is None           # Saturday is open


def test_what_is_left_of_todays_cap_bounds_bookings(store):
    # dat-dai: daily cap 60; walk-ins already took 60 today
    assert refusal(store, issued=60) == "booking_cap"
    assert refusal(store, issued=60, date="2026-11-25") is None                    # another day is free
    assert refusal(store, issued=58, reference="cd" * 16) is None


def test_a_booking_code_reads_as_typed_or_scanned():
    assert normalize_code(" 7kq2-m9xd ") == "7KQ2M9XD"
    assert normalize_code("7KQ2 M9XO") == "7KQ2M9X0"          # O typed for zero
    assert code_from_request(" 7kq2-m9xd ") == "7KQ2M9XD"
    for bad in ["", "7KQ2M9X", "7KQ2M9XDD", "7KQ2-M9XU", "'; DROP TABLE", "x" * 100]:
        with pytest.raises(NotABookingCode):
            normalize_code(bad)
        with pytest.raises(WebError) as e:                  # the web API answers it with a 400
            code_from_request(bad)
        assert e.value.status == 400
