"""`qms kiosk`: the ticket kiosk and the service robot (same program, `--robot`).

One main loop owns the screen, the view state and the issuer. Everything that happens
elsewhere — MQTT messages on paho's thread, GPIO callbacks, the printer worker — only
puts an item on `self.inbox`; the loop takes them between frames. Printing runs on its
own thread so the confirmation screen is up while the ticket comes out.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from qms.config.site import SiteConfig
from qms.kiosk import gpio, screens
from qms.kiosk.catalog import Catalog, load_catalog
from qms.kiosk.checkin import NOT_A_CODE, SEE_STAFF, CheckinClient, make_checkin, parse_code
from qms.kiosk.issuer import Refusal, TicketIssuer
from qms.kiosk.printing import (
    ERRORS_BY_STATUS,
    KioskPrinter,
    PrintedTicket,
    PrinterError,
    can_print,
    make_printer,
    not_printed,
)
from qms.kiosk.robot import Dispenser, Greeter, Stock, stock_state
from qms.kiosk.texts import T as TEXTS
from qms.kiosk.voice import Speaker, make_speaker
from qms.protocol.topics import Topics

log = logging.getLogger("qms.kiosk")

DIM_AFTER_S = 120.0          # robot: dark screen when no one came by for this long
STATUS_POLL_S = 2.0          # printer status and dispenser stock (refills by another process)
SCAN_GAP_S = 1.0             # keys further apart than this start a new scan (a scanner types fast)
SCAN_MAX = 64                # longer keyboard input is not a booking code: keep only its end
HOME = (("home", ("idle",)),)
# the way out of each check-in refusal: (text key, action) buttons
CHECKIN_ACTIONS = {
    "bad_code": (("retry_code", ("checkin",)), ("home", ("idle",))),
    "unknown_code": (("retry_code", ("checkin",)), ("home", ("idle",))),
    "booking_expired": (("new_number", ("menu",)), ("home", ("idle",))),
    "booking_cancelled": (("new_number", ("menu",)), ("home", ("idle",))),
}
TOUCH_EVENTS = ()            # filled after pygame is imported


def _now_ms() -> int:
    return int(time.time() * 1000)


def logical_size(size: tuple[int, int], rotate: int) -> tuple[int, int]:
    """The size the screens are laid out for on a panel of `size` turned by `rotate` degrees."""
    w, h = size
    return (h, w) if rotate in (90, 270) else (w, h)


def to_logical(pos: tuple[int, int], size: tuple[int, int], rotate: int) -> tuple[int, int]:
    """A touch at pixel `pos` of the panel (`size`) as a point of the logical screen, whose
    picture `pygame.transform.rotate` turned `rotate` degrees counter-clockwise onto the panel."""
    x, y = pos
    w, h = size
    if rotate == 90:
        return (h - 1 - y, x)
    if rotate == 180:
        return (w - 1 - x, h - 1 - y)
    if rotate == 270:
        return (y, w - 1 - x)
    return (x, y)


def db_path(cfg: SiteConfig, device_id: str) -> Path:
    """The kiosk's one SQLite file: outbox, offline numbers, dispenser stock."""
    return cfg.state_dir() / f"{device_id}.kiosk.sqlite"


class KioskApp:
    def __init__(self, cfg: SiteConfig, device_id: str, *, robot: bool | None = None,
                 size: tuple[int, int] | None = None, fullscreen: bool = False,
                 printer: KioskPrinter | None = None, speaker: Speaker | None = None,
                 catalog: Catalog | None = None, checkin: CheckinClient | None = None,
                 clock: Callable[[], int] = _now_ms,
                 monotonic: Callable[[], float] = time.monotonic, db: str | Path | None = None):
        import pygame

        from qms.mqtt.device import Device
        from qms.ops.sdnotify import Heartbeat
        global TOUCH_EVENTS
        TOUCH_EVENTS = (pygame.MOUSEBUTTONDOWN, pygame.FINGERDOWN)
        self.pg = pygame
        self.cfg, self.kc = cfg, cfg.kiosk
        self.robot = self.kc.robot if robot is None else robot
        self.clock, self.monotonic = clock, monotonic
        known = cfg.device(device_id)
        if known is None or known.role not in ("kiosk", "robot"):
            raise ValueError(f"device {device_id!r} is not a kiosk or robot in {cfg.source or 'the config'} "
                             f"[[devices]] (kiosks: {', '.join(cfg.kiosk_ids()) or 'none'})")
        self.device_id = device_id
        topics = Topics(cfg.site.id)
        self.service_devices = [d.id for d in cfg.devices if d.role == "service"]
        self.refill_topic = topics.refill(device_id)
        self.inbox: queue.Queue = queue.Queue()
        # the calls: the robot's greeting waits for them; a renumbered ticket's notice ends with its call
        subs = [(topics.all_service_states, 1), (topics.event("ticket.called"), 1),
                (topics.event("ticket.recalled"), 1), (topics.calls, 1), (self.refill_topic, 1)]
        subs += [(topics.status(d), 1) for d in self.service_devices]
        self.device = Device(cfg, device_id, known.role, outbox_path=db or db_path(cfg, device_id),
                             subscriptions=subs, on_message=lambda t, p, props: self.inbox.put(("mqtt", t, p)),
                             status={"kind": "robot" if self.robot else "kiosk"})
        self.issuer = TicketIssuer(cfg, self.device, clock=clock)
        self.printer = printer or make_printer(cfg.printer, cfg.state_dir())
        self.speaker = speaker or make_speaker(cfg)
        self.catalog = catalog or load_catalog(self.kc.catalog or None, {s.id for s in cfg.services})
        for problem in self.catalog.problems:
            log.error("procedure catalog: %s", problem)
        self.checkin = checkin or make_checkin(cfg, device_id)
        self.view = screens.View(cfg, self.catalog, lang=self.kc.language, booking=self.checkin is not None,
                                 service_views=self.issuer.service_views, now_ms=clock())
        self.scan_buf, self.scan_at = "", 0.0      # keyboard text (a QR scanner) since the last Enter
        # screen
        w, h = size or (self.kc.width, self.kc.height)
        pygame.display.init()
        pygame.font.init()
        flags = pygame.FULLSCREEN if fullscreen else 0
        self.display = pygame.display.set_mode((w, h), flags)
        # the screens are drawn on `surface` at the logical size; when the panel is turned it is an
        # offscreen surface blitted rotated into the display each frame (KMSDRM cannot rotate)
        self.rotate = self.kc.rotate
        if self.rotate:
            self.surface = pygame.Surface(logical_size((w, h), self.rotate))
        else:
            self.surface = self.display
        pygame.display.set_caption(f"QMS kiosk {device_id}")
        pygame.mouse.set_visible(not fullscreen)
        self.hits: list[screens.Hit] = []
        self.dirty = True
        self.last_touch = monotonic()
        self.last_render = 0.0
        self.frames = 0
        self.running = True
        # printing worker
        self._print_q: queue.Queue[PrintedTicket | None] = queue.Queue()
        self._printer_thread = threading.Thread(target=self._print_worker, name="kiosk-printer", daemon=True)
        self.printer_status = "unknown"
        # hardware (all optional)
        self.buttons = gpio.service_buttons(self.kc, lambda s: self.inbox.put(("button", s)))
        self.greeter: Greeter | None = None
        self.dispenser: Dispenser | None = None
        self.sensor = None
        self.relay = None
        self.stock: Stock | None = None
        self.last_presence = monotonic()
        if self.robot:
            self.greeter = Greeter(self.speaker, self.kc.greeting_vi, self.kc.person_gap_s,
                                   self.kc.announce_hold_s, clock=monotonic)
            self.sensor = gpio.presence_sensor(self.kc, lambda present: self.inbox.put(("presence", present)))
            self.stock = Stock(self.device.outbox.conn, self.kc.dispenser_capacity, self.device.outbox.lock)
            self.relay = gpio.dispenser_relay(self.kc)
            if self.relay is not None:
                self.dispenser = Dispenser(self.relay, self.stock, self.kc.dispenser_pulse_s,
                                           on_change=self._publish_stock)
        self._last_poll = 0.0
        self._stock_seen: int | None = None
        self.heartbeat = Heartbeat()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> KioskApp:
        self._printer_thread.start()
        self.device.start()
        self._poll_status(force=True)
        return self

    def stop(self) -> None:
        self.running = False
        self._print_q.put(None)
        self._printer_thread.join(3)
        gpio.close_all(self.buttons + [self.sensor, self.relay])
        self.device.stop()
        self.printer.close()
        self.speaker.close()
        self.pg.display.quit()

    def run(self, frames: int | None = None, on_ready: Callable[[], None] | None = None,
            visitors=None) -> None:
        tick = self.pg.time.Clock()
        self.heartbeat.ready(f"kiosk {self.device_id}")
        while self.running:
            self.step()
            if visitors is not None:
                visitors.step(self)
            if self.frames == 1 and on_ready:
                on_ready()
                on_ready = None
            if frames is not None and self.frames >= frames:
                break
            tick.tick(30 if self.view.screen != "idle" else 10)

    # ------------------------------------------------------------ one frame
    def step(self) -> None:
        self._drain_inbox()
        touched = False     # one touch per frame: later ones aimed at a screen that is gone
        for ev in self.pg.event.get():
            if ev.type == self.pg.QUIT:
                self.running = False
            elif ev.type == self.pg.MOUSEBUTTONDOWN and ev.button == 1 and not getattr(ev, "touch", False):
                if not touched:             # (SDL also makes mouse events from touches: skip those)
                    touched = self.touch(to_logical(ev.pos, self.display.get_size(), self.rotate))
            elif ev.type == self.pg.FINGERDOWN and not touched:
                w, h = self.display.get_size()
                pos = (min(int(ev.x * w), w - 1), min(int(ev.y * h), h - 1))
                touched = self.touch(to_logical(pos, (w, h), self.rotate))
            elif ev.type == self.pg.KEYDOWN and ev.key == self.pg.K_ESCAPE and os.environ.get("QMS_KIOSK_ESC"):
                self.running = False
            elif ev.type == self.pg.KEYDOWN:
                self.key(ev.key, getattr(ev, "unicode", ""))
        self._timeouts()
        if self.greeter and self.greeter.poll():
            log.info("greeted a visitor")
        self._poll_status()
        now = self.monotonic()
        if self.dirty or now - self.last_render >= 1.0:
            self.render()
        self.heartbeat.beat()

    def render(self) -> None:
        self.view.now_ms = self.clock()
        self.view.renumbered = self.issuer.renumbered_today()
        self.hits = screens.draw(self.surface, self.view)
        self.present()
        self.dirty = False
        self.last_render = self.monotonic()
        self.frames += 1

    def present(self) -> None:
        """Show the logical screen on the panel, turned if it is mounted turned."""
        if self.rotate:
            self.display.blit(self.pg.transform.rotate(self.surface, self.rotate), (0, 0))
        self.pg.display.flip()

    def save(self, path: str | Path) -> None:
        self.render()
        self.pg.image.save(self.surface, str(path))

    # ------------------------------------------------------------ input
    def touch(self, pos: tuple[int, int]) -> bool:
        """Act on a touch at `pos`. True when it hit a target."""
        self.last_touch = self.monotonic()
        for rect, action in self.hits:
            if rect.collidepoint(pos):
                self.act(action)
                return True
        return False

    def key(self, key: int, char: str) -> None:
        """Keyboard input: a QR scanner (a USB keyboard) types the booking code and Enter.
        Taken on the idle, menu and check-in screens; elsewhere it is dropped."""
        if self.checkin is None or self.view.screen not in ("idle", "menu", "checkin", "dim"):
            self.scan_buf = ""
            return
        now = self.monotonic()
        if now - self.scan_at > SCAN_GAP_S:
            self.scan_buf = ""
        self.scan_at = now
        if key in (self.pg.K_RETURN, self.pg.K_KP_ENTER):
            text, self.scan_buf = self.scan_buf, ""
            if text.strip():
                self.last_touch = now
                self.submit_code(text)
        elif key == self.pg.K_BACKSPACE and self.view.screen == "checkin":
            self.act(("key_delete",))
        elif char and char.isprintable():
            self.scan_buf = (self.scan_buf + char)[-SCAN_MAX:]

    def act(self, action: tuple) -> None:
        v = self.view
        kind = action[0]
        self.dirty = True
        if kind == "menu":
            v.screen, v.page = "menu", 0
        elif kind == "lang":
            v.lang = "en" if v.lang == "vi" else "vi"
        elif kind == "priority_menu":
            v.screen = "priority_menu"
        elif kind == "priority":
            v.priority, v.screen, v.page = action[1], "menu", 0
        elif kind == "procedures":
            v.screen, v.page = "procedures", 0
        elif kind == "proc_service":
            v.service, v.page, v.screen = action[1], 0, "procedure_list"
        elif kind == "proc":
            v.procedure, v.screen = action[1], "procedure"
        elif kind == "page":
            v.page = action[1]
        elif kind == "read":
            proc = self.catalog.for_service(v.service)[action[1]]
            self.speaker.say(proc.text(v.lang), v.lang)
        elif kind == "back":
            v.screen = {"procedure_list": "procedures", "procedure": "procedure_list"}.get(v.screen, "idle")
            v.page = 0
            if v.screen == "idle":
                self.reset()
        elif kind == "service":
            self.take_ticket(action[1], v.priority)
        elif kind in ("idle", "wake"):
            self.reset()
        elif kind == "checkin":
            v.code, v.screen = "", "checkin"
        elif kind == "key" and len(v.code) < 8:
            v.code += action[1]
        elif kind == "key_delete":
            v.code = v.code[:-1]
        elif kind == "submit_code":
            self.submit_code(v.code)

    def reset(self) -> None:
        v = self.view
        v.screen, v.priority, v.service, v.procedure, v.page = "idle", None, None, None, 0
        v.lang, v.ticket, v.printing = self.kc.language, None, False
        v.code, v.title, v.actions = "", "", HOME
        self.dirty = True

    # ------------------------------------------------------------ tickets
    def take_ticket(self, service: str, priority: str | None = None) -> PrintedTicket | Refusal:
        v = self.view
        status = self.printer.status()
        paper = can_print(status)
        if not paper and not self.kc.screen_ticket:
            self._show(ERRORS_BY_STATUS[status]())      # no number lost to a jammed printer
            return Refusal(status, *v.message)
        result = self.issuer.issue(service, priority)
        self.pg.event.clear(TOUCH_EVENTS)                      # taps made while waiting: no 2nd ticket
        self.last_touch = self.monotonic()
        if isinstance(result, Refusal):
            self._show(result)
            return result
        self._hand_out(result, status)
        return result

    def _hand_out(self, ticket: PrintedTicket, status: str) -> None:
        """Walk-in or booked: the ticket goes to the printer (or on screen if it cannot print)."""
        v = self.view
        v.ticket = ticket
        if can_print(status):
            v.printing, v.screen = True, "confirm"
            self._print_q.put(ticket)
        else:
            err = not_printed(ERRORS_BY_STATUS[status]())
            v.message, v.screen = (err.message_vi, err.message_en), "screen_ticket"
            self._report_not_printed(ticket, status, "printer not ready when issued")
        if self.dispenser:
            self.dispenser.dispense()
        self.dirty = True

    def _show(self, refusal: Refusal | PrinterError, title: str = "", actions: tuple = HOME) -> None:
        v = self.view
        v.message, v.title, v.actions, v.screen = (refusal.message_vi, refusal.message_en), title, actions, "message"
        self.dirty = True

    # ------------------------------------------------------------ booking check-in
    def submit_code(self, text: str) -> None:
        """Check a booking in (typed or scanned). The web call runs on a worker thread; its
        answer comes back through the inbox while the screen says "checking"."""
        if self.checkin is None:
            return
        v = self.view
        code = parse_code(text)
        if code is None:                  # never sent nor logged: a wrong scan may be an ID card
            self._show(NOT_A_CODE, "title_bad_code", CHECKIN_ACTIONS["bad_code"])
            return
        status = self.printer.status()
        if not can_print(status) and not self.kc.screen_ticket:
            self._show(ERRORS_BY_STATUS[status]())
            return
        v.code, v.screen, self.dirty = code, "checking", True
        client = self.checkin

        def work() -> None:
            try:
                result = client.check_in(code)
            except Exception:  # noqa: BLE001 - check_in never raises; this is a last guard
                log.exception("check-in failed")
                result = SEE_STAFF
            self.inbox.put(("checkin", code, result))
        threading.Thread(target=work, name="kiosk-checkin", daemon=True).start()

    def _checked_in(self, code: str, result: dict | Refusal) -> None:
        v = self.view
        if v.screen != "checking" or v.code != code:
            log.warning("a check-in answer came after the screen moved on; the citizen can check in again")
            return
        self.pg.event.clear(TOUCH_EVENTS)             # taps made while waiting act on nothing
        self.last_touch = self.monotonic()
        if isinstance(result, Refusal):
            self._show(result, f"title_{result.code}" if f"title_{result.code}" in TEXTS else "",
                       CHECKIN_ACTIONS.get(result.code, HOME))
            return
        try:
            ticket = self.issuer.printed(result)
        except (KeyError, TypeError, ValueError) as e:
            log.error("check-in answer without a usable ticket: %r", e)
            self._show(SEE_STAFF, "title_unavailable")
            return
        log.info("booking checked in: ticket %d", ticket.number)
        self._hand_out(ticket, self.printer.status())

    def _print_worker(self) -> None:
        while True:
            ticket = self._print_q.get()
            if ticket is None:
                return
            try:
                self.printer.print_ticket(ticket)
                self.inbox.put(("printed", ticket, None))
            except PrinterError as e:
                self.inbox.put(("printed", ticket, e))
            except Exception as e:  # noqa: BLE001 - an unknown fault is still a printer fault
                log.exception("printer failed")
                self.inbox.put(("printed", ticket, PrinterError(str(e))))

    def _report_not_printed(self, ticket: PrintedTicket, status: str, detail: str) -> None:
        """The fact `ticket.print_failed` for the service's log, reports and a staff alert."""
        reason = status if status in ("paper_out", "cover_open", "offline") else "unknown"
        try:
            self.device.send("ticket.print_failed", ticket_id=ticket.ticket_id, number=ticket.number,
                             service=ticket.service, reason=reason, detail=detail[:120])
        except Exception:  # noqa: BLE001 - the citizen's screen matters more than the report
            log.exception("could not report ticket %s as not printed", ticket.number)

    def _printed(self, ticket: PrintedTicket, err: PrinterError | None) -> None:
        v = self.view
        if err is not None:
            log.error("ticket %s not printed: %s", ticket.number, err)
            self._report_not_printed(ticket, err.status, str(err))
        if v.ticket is ticket and v.screen == "confirm":
            if err is None:
                v.printing = False
            else:   # the citizen has a number but no paper: show it with its QR code
                v.message, v.screen = (err.message_vi, err.message_en), "screen_ticket"
            self.dirty = True
        self._poll_status(force=True)

    # ------------------------------------------------------------ messages from other threads
    def _drain_inbox(self) -> None:
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return
            try:
                self._handle(item)
            except Exception:  # noqa: BLE001 - one bad message must not stop the kiosk
                log.exception("could not handle %r", item[:2])

    def _handle(self, item: tuple) -> None:
        kind = item[0]
        if kind == "mqtt":
            self._on_mqtt(item[1], item[2])
        elif kind == "printed":
            self._printed(item[1], item[2])
        elif kind == "checkin":
            self._checked_in(item[1], item[2])
        elif kind == "button":
            self.last_touch = self.monotonic()
            self.reset()
            self.take_ticket(item[1])
        elif kind == "presence":
            present = item[1]
            self.last_presence = self.monotonic()
            if self.greeter:
                self.greeter.presence(present)
            if present:
                self.view.greeting = True
                if self.view.screen == "dim":
                    self.reset()
            else:
                self.view.greeting = False
            self.dirty = True

    def _on_mqtt(self, topic: str, payload: bytes) -> None:
        try:
            data = json.loads(payload) if payload else {}
        except (ValueError, UnicodeDecodeError):
            log.warning("ignoring a message that is not JSON on %s", topic)
            return
        if not isinstance(data, dict):
            log.warning("ignoring a message that is not a JSON object on %s", topic)
            return
        parts = topic.split("/")
        if parts[3:5] == ["state", "service"]:
            self.issuer.on_service_view(data)
            self.dirty = True
        elif parts[3] == "event":
            if self.greeter:
                self.greeter.announcement()
            if self.issuer.called([data.get("ticket_id")]):
                self.dirty = True
        elif parts[3:5] == ["state", "calls"]:
            calls = data.get("calls")
            if isinstance(calls, list) and self.issuer.called([c.get("ticket_id") for c in calls
                                                                if isinstance(c, dict)]):
                self.dirty = True
        elif parts[3] == "status":
            self.issuer.on_service_status(parts[4], data)
        elif topic == self.refill_topic and self.stock is not None:
            items = data.get("items")
            if items is not None and not isinstance(items, int):
                log.warning("refill: `items` must be a whole number, got %r", items)
                return
            n = self.stock.refill(items)
            log.info("dispenser refilled over MQTT: %d items", n)
            self._poll_status(force=True)

    # ------------------------------------------------------------ timers and status
    def _timeouts(self) -> None:
        v = self.view
        idle_for = self.monotonic() - self.last_touch
        limit = self.kc.confirm_seconds if v.screen == "confirm" and not v.printing else self.kc.idle_timeout_s
        # (not while a check-in is under way: it ends within checkin_timeout_s, and dropping
        # its answer would leave a checked-in citizen without paper)
        if v.screen not in ("idle", "dim", "checking") and idle_for >= limit:
            self.reset()
        if (self.robot and self.sensor is not None and v.screen == "idle" and not v.greeting
                and self.monotonic() - self.last_presence >= DIM_AFTER_S):
            v.screen, self.dirty = "dim", True

    def _publish_stock(self, items: int) -> None:
        self._stock_seen = items
        self.device.link.set_status(stock=items, stock_state=stock_state(items))

    def _poll_status(self, force: bool = False) -> None:
        now = self.monotonic()
        if not force and now - self._last_poll < STATUS_POLL_S:
            return
        self._last_poll = now
        status = self.printer.status()
        if status != self.printer_status:
            self.printer_status = status
            self.device.link.set_status(printer=status)
        if self.stock is not None:
            items = self.stock.items()
            if items != self._stock_seen:
                self._publish_stock(items)


# ------------------------------------------------------------ CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", default="run", choices=["run", "refill", "check-catalog"],
                   help="run the kiosk (default); refill: set the robot's dispenser stock; "
                        "check-catalog: validate the procedure catalog")
    p.add_argument("--config", "-c", required=True, help="site config (TOML)")
    p.add_argument("--device", default="kiosk-1", help="this kiosk's device id in the config")
    p.add_argument("--robot", action="store_true", help="service robot profile (also [kiosk] robot = true)")
    p.add_argument("--headless", action="store_true", help="no window (SDL dummy video driver)")
    p.add_argument("--size", help="window size WIDTHxHEIGHT (default from [kiosk])")
    p.add_argument("--windowed", action="store_true", help="a window instead of full screen")
    p.add_argument("--printer", choices=["config", "memory"], default="config",
                   help="config: the printer of [printer] (default); memory: no printer, tickets kept in memory")
    p.add_argument("--items", type=int, help="refill: items now in the dispenser (default: its capacity)")
    p.add_argument("--catalog", help="check-catalog: the file to check (default [kiosk] catalog)")
    p.add_argument("--frames", type=int, help=argparse.SUPPRESS)   # tests/bench: stop after N frames


def _parse_size(s: str) -> tuple[int, int]:
    w, _, h = s.lower().partition("x")
    return int(w), int(h)


def run(args, visitors=None) -> int:
    """`qms kiosk`. `visitors`: something whose `step(app)` runs once per frame (`qms demo`
    passes its simulated citizens, qms/sim/visitors.py)."""
    from qms.config.site import load_config
    cfg = load_config(args.config)
    if args.action == "check-catalog":
        return _check_catalog(cfg, args.catalog or cfg.kiosk.catalog or None)
    if args.action == "refill":
        return _refill(cfg, args.device, args.items)
    if args.headless:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    try:
        size = _parse_size(args.size) if args.size else None
    except ValueError:
        print(f"error: --size must look like 1280x800, not {args.size!r}", file=sys.stderr)
        return 2
    try:
        printer = make_printer(cfg.printer, cfg.state_dir(), memory=args.printer == "memory")
    except Exception as e:  # noqa: BLE001 - a bad printer config must be said, not crash
        print(f"error: printer: {e}", file=sys.stderr)
        return 2
    try:
        app = KioskApp(cfg, args.device, robot=True if args.robot else None, size=size, printer=printer,
                       fullscreen=cfg.kiosk.fullscreen and not args.windowed and not args.headless)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    app.start()
    from qms.ops.sdnotify import stop_on_sigterm
    stop_on_sigterm(lambda: setattr(app, "running", False))    # the frame loop ends, then stop()
    try:
        app.run(frames=args.frames, on_ready=lambda: print("kiosk ready: idle screen drawn", flush=True),
                visitors=visitors)
    except KeyboardInterrupt:
        pass
    finally:
        app.stop()
    return 0


def _check_catalog(cfg: SiteConfig, path: str | None) -> int:
    from qms.kiosk.catalog import DEFAULT, parse_catalog
    target = Path(path) if path else DEFAULT
    try:
        cat = parse_catalog(target, {s.id for s in cfg.services})
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for problem in cat.problems:
        print(f"warning: {problem}", file=sys.stderr)
    print(f"{target}: {len(cat.procedures)} procedures")
    for s in cfg.services:
        print(f"  {s.code} {s.name_vi}: {len(cat.for_service(s.id))}")
    return 1 if cat.problems else 0


def _refill(cfg: SiteConfig, device_id: str, items: int | None) -> int:
    from qms.mqtt.outbox import connect
    if items is not None and items < 0:
        print("error: --items must be 0 or more", file=sys.stderr)
        return 2
    path = db_path(cfg, device_id)
    if not path.exists():
        print(f"error: {path} does not exist: has kiosk {device_id!r} run on this machine?", file=sys.stderr)
        return 1
    conn = connect(path)
    try:
        n = Stock(conn, cfg.kiosk.dispenser_capacity).refill(items)
    finally:
        conn.close()
    print(f"{device_id}: dispenser stock set to {n} items (the kiosk publishes it within {STATUS_POLL_S:.0f} s)")
    return 0
