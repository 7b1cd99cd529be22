"""`qms display`: the hall display with voice announcements.

The main loop sleeps on a queue fed by the MQTT link (paho's thread only queues), wakes for
a message or for the next thing that changes by itself (the clock's minute, a blink phase,
a ticker step) and redraws only the dirty regions. The board boots from the retained
state/# messages, keeps its picture while the broker is away (with a small "mất kết nối"
mark) and catches up from the retained state when the link is back.

With `[city] public_url` (and `board_points`), a band lists the other points of this center
as the city says (qms.citylink: read on a background thread, cached; the loop only looks at
what is cached, every `cache_seconds`, and when an answer changes). The city unreachable or
slow: no band, the board as without a city.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import queue
import time
from pathlib import Path

from qms.display.board import ALERTS, HEADER, HERO, POINTS, SERVICES, TICKER, BoardModel

log = logging.getLogger("qms.display")


def display_device(cfg, wanted: str = "") -> str:
    if wanted:
        return wanted
    if cfg.display.device:
        return cfg.display.device
    return next((d.id for d in cfg.devices if d.role == "display"), "display")


class DisplayApp:
    def __init__(self, cfg, *, device_id: str = "", size: tuple[int, int] | None = None,
                 fullscreen: bool | None = None, voice: bool | None = None,
                 trace: str | Path | None = None, connect: bool = True):
        import pygame

        from qms.display.render import BoardRenderer, Fonts
        from qms.protocol.topics import Topics

        self.cfg = cfg
        d = cfg.display
        self.device_id = display_device(cfg, device_id)
        self.topics = Topics(cfg.site.id)
        self.inbox: queue.Queue = queue.Queue()
        self.model = BoardModel(cfg.site.id, [c.number for c in cfg.counters],
                                [s.id for s in cfg.services], ticker=d.ticker,
                                kept_calls=max(d.last_calls + 1, 2))
        pygame.display.init()
        pygame.font.init()
        w, h = size or (d.width, d.height)
        full = d.fullscreen if fullscreen is None else fullscreen
        flags = pygame.FULLSCREEN if full else 0
        self.screen = pygame.display.set_mode((w, h), flags)
        pygame.display.set_caption(f"QMS — {cfg.site.name}")
        pygame.mouse.set_visible(False)
        self.renderer = BoardRenderer(
            self.screen, self.model, center=cfg.site.center, site=cfg.site.name,
            service_names={s.id: s.name_vi for s in cfg.services}, tz=cfg.tz,
            fonts=Fonts(d.font, d.font_bold), last_calls=d.last_calls, blink_seconds=d.blink_seconds,
            blink_period=d.blink_period, clock_seconds=d.clock_seconds, english=d.english,
            ticker_speed=d.ticker_speed)
        self._trace = open(trace, "a", buffering=1, encoding="utf-8") if trace else None
        self.announcer = self._make_announcer() if (cfg.voice.enabled if voice is None else voice) else None
        self.frames = 0
        self._to_announce: list = []
        self._last_clock = ""
        self._last_blink: bool | None = None
        self._last_ticker = 0.0
        self._last_alert_page = 0
        self._last_service_page = 0
        self._last_points_page = 0
        self.city = None
        if cfg.city.public_url and cfg.city.board_points:
            from qms.citylink.client import CityLink
            self.city = CityLink(cfg, on_change=lambda: self.inbox.put(("city",)), agent="qms-display")
        self._next_city = 0.0
        self._stop = False
        self.link = None
        if connect:
            from qms.mqtt.client import MqttLink
            self.link = MqttLink(
                cfg.mqtt, self.device_id,
                subscriptions=[(self.topics.all_state, 1), (self.topics.all_alerts, 1),
                               (self.topics.event("ticket.called"), 1),
                               (self.topics.event("ticket.recalled"), 1)],
                on_message=lambda topic, payload, props: self.inbox.put(("msg", topic, payload,
                                                                         time.monotonic())),
                status_topic=self.topics.status(self.device_id), status={"role": "display"},
                config_dir=Path(cfg.source).resolve().parent if cfg.source else None,
                on_connect=lambda: self.inbox.put(("link", True)),
                on_disconnect=lambda: self.inbox.put(("link", False)))

    def _make_announcer(self):
        from qms.display.announcer import CallAnnouncer
        from qms.voice.packs import VoiceError, make_voice
        from qms.voice.player import Player
        v = self.cfg.voice
        try:
            voice = make_voice(v, Path(self.cfg.source).resolve().parent if self.cfg.source else None)
            chime = Path(v.chime).read_bytes() if v.chime else None
            import datetime as dt
            return CallAnnouncer(voice, Player(v.audio_device), v, chime=chime,
                                 local_time=lambda: dt.datetime.now(self.cfg.tz).time(),
                                 on_event=self._audio_event)
        except (VoiceError, OSError, Exception) as e:  # noqa: BLE001 - the board runs without voice
            log.error("voice announcements are off: %s", e)
            return None

    def _audio_event(self, kind: str, a) -> None:
        if kind == "chime":
            self.trace("audio", number=a.number, counter=a.counter, recall=a.recall)

    def trace(self, kind: str, **fields) -> None:
        if self._trace:
            self._trace.write(json.dumps({"t": time.monotonic(), "kind": kind, **fields}) + "\n")

    # ------------------------------------------------------------ loop
    def start(self) -> DisplayApp:
        if self.link:
            self.link.start()
        return self

    def stop(self) -> None:
        self._stop = True

    def close(self) -> None:
        if self.link:
            self.link.stop()
        if self.announcer:
            self.announcer.close()
        if self._trace:
            self._trace.close()

    def _time_dirty(self, t: float) -> set[str]:
        dirty = set()
        clock = self.renderer.clock_text(self.renderer.now())
        if clock != self._last_clock:
            self._last_clock = clock
            dirty.add(HEADER)
        phase = self.renderer.blink_phase(t)
        if phase != self._last_blink:
            self._last_blink = phase
            dirty.add(HERO)
        if self.renderer.ticker_moves() and t - self._last_ticker >= 1 / self.cfg.display.ticker_fps:
            dirty.add(TICKER)
        page = self.renderer.alert_page(t)
        if page != self._last_alert_page:
            self._last_alert_page = page
            dirty.add(ALERTS)
        page = self.renderer.service_page(t)
        if page != self._last_service_page:
            self._last_service_page = page
            dirty.add(SERVICES)
        page = self.renderer.points_page(t)
        if page != self._last_points_page:
            self._last_points_page = page
            dirty.add(POINTS)
        return dirty

    def _next_wakeup(self, t: float) -> float:
        """Seconds until something changes by itself (bounded so events are pumped)."""
        waits = [0.5]
        now = self.renderer.now()
        if self.cfg.display.clock_seconds:
            waits.append(1 - now.microsecond / 1e6)
        else:
            waits.append(60 - now.second - now.microsecond / 1e6)
        m = self.model
        if m.hero_since is not None and self._last_blink is not None:
            period = self.renderer.blink_period
            elapsed = t - m.hero_since
            waits.append(min(period * (math.floor(elapsed / period) + 1),
                             self.renderer.blink_seconds) - elapsed)
        if self.renderer.ticker_moves():
            waits.append(1 / self.cfg.display.ticker_fps - (t - self._last_ticker))
        if self.renderer.alert_pages() > 1:
            every = self.renderer.alert_page_seconds
            waits.append(every - t % every)
        if self.renderer.service_pages() > 1:
            every = self.renderer.service_page_seconds
            waits.append(every - t % every)
        if len(self.renderer.points_plan) > 1:
            every = self.renderer.points_page_seconds
            waits.append(every - t % every)
        if self.city:
            waits.append(self._next_city - time.monotonic())
        return max(0.0, min(waits))

    def step(self, max_wait: float | None = None) -> list:
        """Wait for input or the next timed change, then draw what changed. Returns the
        updated rectangles (empty when nothing was drawn)."""
        import pygame
        t = self.model.clock()
        wait = self._next_wakeup(t) if max_wait is None else min(max_wait, self._next_wakeup(t))
        items = []
        try:
            items.append(self.inbox.get(timeout=wait) if wait > 0 else self.inbox.get_nowait())
            while True:
                items.append(self.inbox.get_nowait())
        except queue.Empty:
            pass
        arrived = min((item[3] for item in items if len(item) > 3), default=None)
        for item in items:
            self.feed(item)
        self._poll_city()
        for event in pygame.event.get():
            if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
                self._stop = True
        t = self.model.clock()
        dirty = self.model.take_dirty() | self._time_dirty(t)
        if not dirty:
            self._announce()
            return []
        if TICKER in dirty:
            self._last_ticker = t
        before = self.renderer.drawn_hero
        rects = self.renderer.draw(dirty, t)
        pygame.display.update(rects)
        self.frames += 1
        if HERO in dirty and self.renderer.drawn_hero != before:
            self.trace("frame", hero=self.renderer.drawn_hero, arrived=arrived,
                       draw_ms=round((time.monotonic() - t) * 1000, 2))
        self._announce()
        return rects

    def _poll_city(self) -> None:
        """What the city last said of the other points: the cache only (the reader asks the
        city on its own thread once the answer is older than cache_seconds)."""
        now = time.monotonic()
        if self.city and now >= self._next_city:
            self._next_city = now + self.city.ttl
            self.model.set_points(self.city.center_points())

    def feed(self, item: tuple) -> None:
        if item[0] == "city":                   # an answer changed (the reader's thread)
            if self.city:
                self.model.set_points(self.city.center_points())
            return
        if item[0] == "link":
            self.model.set_connected(item[1])
            self.trace("link", up=item[1])
            return
        topic, payload = item[1], item[2]
        # announced after the frame is drawn: the synthesis thread would compete with drawing
        self._to_announce += self.model.handle(topic, payload)

    def _announce(self) -> None:
        todo, self._to_announce = self._to_announce, []
        for a in todo:
            if self.announcer:
                self.announcer.announce(a.number, a.counter, a.recall, a.printed_number)

    def run(self, duration: float | None = None, heartbeat=None) -> None:
        end = None if duration is None else time.monotonic() + duration
        while not self._stop and (end is None or time.monotonic() < end):
            self.step(None if end is None else max(0.0, end - time.monotonic()))
            if heartbeat:
                heartbeat.beat()


# ------------------------------------------------------------------ CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", required=True, help="site config (TOML)")
    p.add_argument("--device", default="", help="MQTT device id (default: the config's display device)")
    p.add_argument("--size", help="WIDTHxHEIGHT, e.g. 1280x720 or 1080x1920 (portrait)")
    p.add_argument("--windowed", action="store_true", help="not full screen")
    p.add_argument("--headless", action="store_true",
                   help="no window, no sound card: video to nowhere, audio to --audio-file")
    p.add_argument("--audio-file", help="with --headless: raw PCM output (default <state_dir>/display-audio.raw)")
    p.add_argument("--no-voice", action="store_true", help="board only")
    p.add_argument("--trace", help="append frame/audio timings as JSON lines (benchmarks)")
    p.add_argument("--duration", type=float, help="exit after this many seconds")


def run(args) -> int:
    from qms.config.site import load_config
    cfg = load_config(args.config)
    if args.headless:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
        os.environ["SDL_AUDIODRIVER"] = "disk"
        audio = Path(args.audio_file or cfg.state_dir() / "display-audio.raw")
        audio.parent.mkdir(parents=True, exist_ok=True)
        os.environ["SDL_DISKAUDIOFILE"] = str(audio)
    size = None
    if args.size:
        try:
            w, h = (int(x) for x in args.size.lower().split("x"))
            size = (w, h)
        except ValueError:
            log.error("--size must look like 1920x1080, not %r", args.size)
            return 2
    from qms.ops.sdnotify import Heartbeat, stop_on_sigterm
    app = DisplayApp(cfg, device_id=args.device, size=size,
                     fullscreen=False if (args.windowed or args.headless) else None,
                     voice=False if args.no_voice else None, trace=args.trace).start()
    hb = Heartbeat()
    hb.ready("display running")
    stop_on_sigterm(app.stop)
    try:
        app.run(args.duration, heartbeat=hb)
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
    return 0
