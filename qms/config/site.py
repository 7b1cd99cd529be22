"""The site configuration: one TOML file per site, validated by one typed schema.

Every struct forbids unknown keys, so a typo is an error that names the key and the
file instead of a silently ignored setting. Role sections (printer, kiosk, display,
voice, counter terminal, web, report) are modules of this package beside this one and
are composed here; the config layer imports no device package.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import re
import tomllib
import unicodedata
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from qms.config.city import PUBLIC_URL, CityConfig
from qms.config.counter import CounterTerminalConfig
from qms.config.display import DisplayConfig, VoiceConfig
from qms.config.kiosk import KioskConfig
from qms.config.printer import PrinterConfig
from qms.config.report import ReportConfig
from qms.config.web import WebConfig

log = logging.getLogger("qms.config")

Id = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]
HHMM = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ConfigError(ValueError):
    """A config file is invalid; the message names the file and the key."""


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class Site(_Strict):
    id: Id
    name: Text                      # name of this point, e.g. "Điểm chính"
    center: Text                    # the center it belongs to
    address: str = ""
    timezone: str = "Asia/Ho_Chi_Minh"
    public_url: str = ""            # base URL of the tracking page printed as QR


class Break(_Strict):
    """A staggered break ("trực trưa"): these counters go away for `minutes`, each as soon
    as it has finished its citizen after `start`. The wait estimate plans for it."""
    start: HHMM
    minutes: Annotated[int, msgspec.Meta(ge=5, le=240)]
    counters: Annotated[list[Annotated[int, msgspec.Meta(ge=1, le=99)]], msgspec.Meta(min_length=1)]


class Hours(_Strict):
    open: HHMM = "07:30"
    close: HHMM = "17:00"
    cutoff_minutes: Annotated[int, msgspec.Meta(ge=0, le=240)] = 15
    # tickets can be taken this long before opening (people queue before the doors open)
    early_minutes: Annotated[int, msgspec.Meta(ge=0, le=180)] = 30
    weekdays: list[Annotated[int, msgspec.Meta(ge=1, le=7)]] = msgspec.field(
        default_factory=lambda: [1, 2, 3, 4, 5])
    breaks: list[Break] = []


class QueuePolicy(_Strict):
    priority_mode: Literal["interleave", "strict"] = "interleave"
    # interleave: after this many priority calls in a row at a counter, a waiting
    # normal ticket goes first (no starvation by a stream of priority tickets)
    priority_burst: Annotated[int, msgspec.Meta(ge=1, le=20)] = 2
    # a ticket waiting longer than this is served by the next counter that offers its
    # service, whatever that counter's order of preference (0 = off)
    aging_minutes: Annotated[int, msgspec.Meta(ge=0, le=480)] = 0
    no_show_window_minutes: Annotated[int, msgspec.Meta(ge=0, le=480)] = 30
    recall_cap: Annotated[int, msgspec.Meta(ge=0, le=10)] = 3
    # numbers per service reserved for each kiosk's offline tickets (top of the range)
    offline_block: Annotated[int, msgspec.Meta(ge=0, le=200)] = 50
    # no longer used (the estimator takes the day's mean service time, see
    # qms/core/service_times.py); still accepted so that configs setting it load, with a warning
    service_time_alpha: Annotated[float, msgspec.Meta(ge=0.01, le=1.0)] | None = None


class Service(_Strict):
    id: Id
    code: Annotated[int, msgspec.Meta(ge=1, le=9)]    # ticket number = code*1000 + n
    name_vi: Text
    name_en: Text
    daily_cap: Annotated[int, msgspec.Meta(ge=1, le=999)] = 300
    first: Annotated[int, msgspec.Meta(ge=1, le=999)] = 1
    last: Annotated[int, msgspec.Meta(ge=1, le=999)] = 999
    avg_service_minutes: Annotated[float, msgspec.Meta(gt=0, le=240)] = 8.0
    open: HHMM | None = None       # per-service hours, default the site's
    close: HHMM | None = None


class PriorityClass(_Strict):
    id: Id
    name_vi: Text
    name_en: Text


class Counter(_Strict):
    number: Annotated[int, msgspec.Meta(ge=1, le=99)]
    services: Annotated[list[Id], msgspec.Meta(min_length=1)]   # in order of preference
    name_vi: str = ""
    name_en: str = ""


Role = Literal["service", "kiosk", "robot", "display", "counter", "web", "admin"]


class Device(_Strict):
    id: Id
    role: Role
    counter: Annotated[int, msgspec.Meta(ge=1, le=99)] | None = None


class Mqtt(_Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 1883
    username: str | None = None      # default: the device id
    password: str | None = None
    password_file: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    keepalive: Annotated[int, msgspec.Meta(ge=5, le=600)] = 15


class Paths(_Strict):
    # relative paths are relative to the config file; `qms install` writes /var/lib/qms
    # (UNIT_STATE_DIR) into the installed config
    state_dir: str = "var"


# The only directory the systemd units may write (ProtectSystem=strict, ReadWritePaths=)
UNIT_STATE_DIR = Path("/var/lib/qms")
# Where `qms install` puts the site config: a config there is run by the units
INSTALLED_CONFIG_DIR = Path("/etc/qms")


class SiteConfig(_Strict):
    site: Site
    services: Annotated[list[Service], msgspec.Meta(min_length=1)]
    counters: list[Counter]
    hours: Hours = msgspec.field(default_factory=Hours)
    queue: QueuePolicy = msgspec.field(default_factory=QueuePolicy)
    priority_classes: list[PriorityClass] = []
    devices: list[Device] = []
    mqtt: Mqtt = msgspec.field(default_factory=Mqtt)
    paths: Paths = msgspec.field(default_factory=Paths)
    printer: PrinterConfig = msgspec.field(default_factory=PrinterConfig)
    kiosk: KioskConfig = msgspec.field(default_factory=KioskConfig)
    display: DisplayConfig = msgspec.field(default_factory=DisplayConfig)
    voice: VoiceConfig = msgspec.field(default_factory=VoiceConfig)
    counter_terminal: CounterTerminalConfig = msgspec.field(default_factory=CounterTerminalConfig)
    web: WebConfig = msgspec.field(default_factory=WebConfig)
    report: ReportConfig = msgspec.field(default_factory=ReportConfig)
    city: CityConfig = msgspec.field(default_factory=CityConfig)
    # set by the loader, not read from the file
    source: str = ""

    # -- look-ups ---------------------------------------------------------
    def service(self, service_id: str) -> Service:
        for s in self.services:
            if s.id == service_id:
                return s
        raise KeyError(service_id)

    def counter(self, number: int) -> Counter:
        for c in self.counters:
            if c.number == number:
                return c
        raise KeyError(number)

    def device(self, device_id: str) -> Device | None:
        for d in self.devices:
            if d.id == device_id:
                return d
        return None

    def kiosk_ids(self) -> list[str]:
        return [d.id for d in self.devices if d.role in ("kiosk", "robot")]

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.site.timezone)

    def state_dir(self) -> Path:
        """The state directory (event log, outboxes); ConfigError naming it when this
        process cannot write there (a unit's read-only root, say), instead of a
        "Read-only file system" deep in sqlite at every restart."""
        p = self.state_dir_path()
        problem = state_dir_problem(p)
        if problem:
            raise _fail(self.source or "site config", f"state directory {p} (`paths.state_dir`) {problem}; the systemd "
                        f"units may write only {UNIT_STATE_DIR}: set state_dir = \"{UNIT_STATE_DIR}\" "
                        "in [paths] (`qms install` does)")
        return p

    def state_dir_path(self) -> Path:
        """`paths.state_dir` resolved (relative to the config file), not checked."""
        p = Path(self.paths.state_dir)
        if not p.is_absolute() and self.source:
            p = Path(os.path.normpath(Path(self.source).resolve().parent / p))
        return p

    def unit_cannot_write_state_dir(self) -> bool:
        """An installed config (in /etc/qms) whose state dir is outside what the units may write."""
        if self.source and Path(self.source).resolve().parent != INSTALLED_CONFIG_DIR:
            return False
        p = self.state_dir_path().resolve()
        return p != UNIT_STATE_DIR and UNIT_STATE_DIR not in p.parents


def state_dir_problem(p: Path) -> str | None:
    """Why this process cannot create or write `p`, or None. Creates nothing."""
    existing = p
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing != p and not existing.is_dir():
        return f"cannot be created: {existing} is not a directory"
    if existing == p and not p.is_dir():
        return "is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return "is not writable" if existing == p else f"cannot be created: {existing} is not writable"
    return None


def to_nfc(obj: Any) -> Any:
    """Normalize every string (in nested dicts and lists too) to NFC: decomposed Vietnamese
    renders badly on screens and printers. For every text file a center edits."""
    if isinstance(obj, str):
        return unicodedata.normalize("NFC", obj)
    if isinstance(obj, dict):
        return {k: to_nfc(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_nfc(v) for v in obj]
    return obj


def _fail(source: str, msg: str) -> ConfigError:
    return ConfigError(f"{source}: {msg}")


def _jsonpath_to_toml(msg: str) -> str:
    # msgspec says "at `$.services[0].code`"; staff read TOML, so say "at services[0].code"
    return re.sub(r"`\$\.?([^`]*)`", lambda m: f"`{m.group(1) or '(top level)'}`", msg)


def _check(cfg: SiteConfig, source: str) -> None:
    """Cross-field rules a type cannot express."""
    try:
        zoneinfo.ZoneInfo(cfg.site.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _fail(source, f"unknown time zone {cfg.site.timezone!r} at `site.timezone`") from None

    def minutes(hhmm: str) -> int:
        h, m = hhmm.split(":")
        return int(h) * 60 + int(m)

    if minutes(cfg.hours.open) >= minutes(cfg.hours.close):
        raise _fail(source, "`hours.open` must be before `hours.close`")
    if cfg.hours.cutoff_minutes >= minutes(cfg.hours.close) - minutes(cfg.hours.open):
        raise _fail(source, "`hours.cutoff_minutes` leaves no time to issue tickets")

    if cfg.city.public_url and not re.fullmatch(PUBLIC_URL, cfg.city.public_url):
        raise _fail(source, f"`city.public_url` = {cfg.city.public_url!r} is not a web address: "
                    'give e.g. "https://city.example.vn"')

    seen_ids: dict[str, str] = {}
    seen_codes: dict[int, str] = {}
    n_kiosks = len(cfg.kiosk_ids())
    for i, s in enumerate(cfg.services):
        where = f"services[{i}]"
        if s.id in seen_ids:
            raise _fail(source, f"duplicate service id {s.id!r} at `{where}.id`")
        if s.code in seen_codes:
            raise _fail(source, f"service code {s.code} used twice (at `{where}.code` and by {seen_codes[s.code]!r})")
        seen_ids[s.id] = where
        seen_codes[s.code] = s.id
        if s.first > s.last:
            raise _fail(source, f"`{where}.first` must not exceed `{where}.last`")
        reserved = n_kiosks * cfg.queue.offline_block
        online = s.last - s.first + 1 - reserved
        if online < s.daily_cap:
            raise _fail(
                source,
                f"`{where}.daily_cap` = {s.daily_cap} does not fit: numbers {s.first}..{s.last} "
                f"minus {reserved} reserved for offline kiosk tickets leave {max(online, 0)}",
            )
        if (s.open is None) != (s.close is None):
            raise _fail(source, f"`{where}` needs both `open` and `close`, or neither")
        if s.open and s.close and minutes(s.open) >= minutes(s.close):
            raise _fail(source, f"`{where}.open` must be before `{where}.close`")

    seen_pc: set[str] = set()
    for i, p in enumerate(cfg.priority_classes):
        if p.id in seen_pc:
            raise _fail(source, f"duplicate priority class {p.id!r} at `priority_classes[{i}].id`")
        seen_pc.add(p.id)

    seen_counters: set[int] = set()
    for i, c in enumerate(cfg.counters):
        if c.number in seen_counters:
            raise _fail(source, f"duplicate counter number {c.number} at `counters[{i}].number`")
        seen_counters.add(c.number)
        for j, sid in enumerate(c.services):
            if sid not in seen_ids:
                raise _fail(source, f"unknown service {sid!r} at `counters[{i}].services[{j}]`")
        if len(set(c.services)) != len(c.services):
            raise _fail(source, f"a service is listed twice at `counters[{i}].services`")

    for i, b in enumerate(cfg.hours.breaks):
        for j, n in enumerate(b.counters):
            if n not in seen_counters:
                raise _fail(source, f"unknown counter {n} at `hours.breaks[{i}].counters[{j}]`")

    seen_dev: set[str] = set()
    for i, d in enumerate(cfg.devices):
        if d.id in seen_dev:
            raise _fail(source, f"duplicate device id {d.id!r} at `devices[{i}].id`")
        seen_dev.add(d.id)
        if d.role == "counter":
            if d.counter is None:
                raise _fail(source, f"`devices[{i}].counter` is required for a counter device")
            if d.counter not in seen_counters:
                raise _fail(source, f"unknown counter {d.counter} at `devices[{i}].counter`")
        elif d.counter is not None:
            raise _fail(source, f"`devices[{i}].counter` is only for role \"counter\"")


def parse_config(text: str, source: str = "<string>") -> SiteConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _fail(source, f"not valid TOML: {e}") from None
    try:
        cfg = msgspec.convert(to_nfc(raw), SiteConfig)
    except msgspec.ValidationError as e:
        raise _fail(source, _jsonpath_to_toml(str(e))) from None
    cfg.source = source
    _check(cfg, source)
    if cfg.queue.service_time_alpha is not None:
        log.warning("%s: queue.service_time_alpha is no longer used (the wait estimate takes the "
                    "day's mean service time); it can be removed", source)
    return cfg


def load_config(path: str | Path) -> SiteConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return parse_config(text, str(path))


def minutes_of(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def local_time(cfg: SiteConfig, ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, cfg.tz)
