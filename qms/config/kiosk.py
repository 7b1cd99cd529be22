"""Config section of the kiosk (and robot)."""
from typing import Annotated, Literal

import msgspec

Seconds = Annotated[float, msgspec.Meta(ge=0.0, le=3600.0)]
Pin = Annotated[int, msgspec.Meta(ge=0, le=40)]


class KioskConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # -- talking to the service
    # how long a ticket request may wait for the service before the kiosk prints
    # a number from its own offline block (paper wins; see docs/kiosk.md)
    request_timeout_s: Annotated[float, msgspec.Meta(ge=0.1, le=10.0)] = 1.0
    # -- booking check-in through `qms web` (POST /api/v1/checkin; docs/kiosk.md)
    # file holding this kiosk's token of scope "checkin" (`qms web --new-token kiosk-1 --scope
    # checkin`); "{device}" is replaced by the device id, a relative path is relative to the
    # config file. Empty = no "I have a booking" button.
    checkin_token_file: str = ""
    checkin_url: str = ""          # base URL of `qms web`; empty = site.public_url
    checkin_timeout_s: Annotated[float, msgspec.Meta(ge=1.0, le=30.0)] = 8.0
    # -- screen
    width: Annotated[int, msgspec.Meta(ge=320, le=7680)] = 1280
    height: Annotated[int, msgspec.Meta(ge=240, le=7680)] = 800
    fullscreen: bool = True
    # the picture turned this many degrees counter-clockwise on the panel, drawn so by the kiosk
    # itself (SDL's KMSDRM driver cannot rotate): 90 or 270 for a landscape panel mounted upright.
    # width/height stay the panel's own mode; the screens are laid out for the turned size.
    rotate: Literal[0, 90, 180, 270] = 0
    language: Literal["vi", "en"] = "vi"          # language of the idle screen
    idle_timeout_s: Annotated[float, msgspec.Meta(ge=5.0, le=600.0)] = 30.0
    confirm_seconds: Annotated[float, msgspec.Meta(ge=2.0, le=120.0)] = 10.0
    # when the printer cannot print, still issue and show the number and its QR on screen
    screen_ticket: bool = False
    # procedure catalog (TOML); empty = the bundled kiosk/catalog_default.toml
    catalog: str = ""
    # optional physical buttons: service id -> BCM pin (one touch = one ticket)
    buttons: dict[str, Pin] = {}
    # after a button gave a ticket, presses of any button within this time give none: the
    # same rule as the touch screen, where taps made while a ticket is issued and printed
    # act on nothing (an impatient second press is not a second citizen). 0 = off.
    button_guard_s: Annotated[float, msgspec.Meta(ge=0.0, le=60.0)] = 3.0
    # -- service robot profile (same program, `qms kiosk --robot`)
    robot: bool = False
    presence: Literal["none", "motion", "distance"] = "none"
    presence_pin: Pin = 4                       # MotionSensor pin, or DistanceSensor echo
    presence_trigger_pin: Pin = 17              # DistanceSensor trigger
    presence_distance_m: Annotated[float, msgspec.Meta(gt=0.0, le=4.0)] = 1.0
    # a person must be gone this long before the next arrival counts as a new person
    person_gap_s: Seconds = 8.0
    # no greeting while the hall announces: hold it this long after a call
    announce_hold_s: Seconds = 8.0
    greeting_vi: str = "Xin chào, mời bạn chọn dịch vụ trên màn hình."
    dispenser_pin: Pin | None = None            # relay of the water/candy dispenser
    dispenser_pulse_s: Annotated[float, msgspec.Meta(gt=0.0, le=10.0)] = 0.5
    dispenser_capacity: Annotated[int, msgspec.Meta(ge=0, le=10000)] = 100

