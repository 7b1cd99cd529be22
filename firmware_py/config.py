"""The box's settings: config.json on its flash (docs/firmware.md shows a full one).

`load(text)` checks every field and fills in defaults; anything wrong raises
ConfigError naming the field, what it must be and what it was, so the person flashing
the box can fix it from the message alone.
"""
import json

KEY_NAMES = ("next", "recall", "no_show", "transfer", "pause", "done",
             "rate1", "rate2", "rate3", "rate4")

TIMING = {                       # name: (default, min, max)
    "debounce_ms": (30, 5, 500),
    "long_press_ms": (1000, 300, 10000),
    "repeat_guard_ms": (1500, 0, 10000),
    "rating_s": (30, 3, 600),
    "call_timeout_ms": (5000, 500, 30000),
    "resend_ms": (3000, 500, 60000),
    "recall_blink_ms": (5000, 0, 60000),
    "chooser_idle_ms": (20000, 3000, 120000),
    "message_ms": (2000, 500, 10000),
    "loop_ms": (10, 1, 50),
}


class ConfigError(ValueError):
    pass


def _get(obj, path, key, kind, default=None, required=False):
    if key not in obj or obj[key] is None:
        if required:
            raise ConfigError("config.json: %s%s is missing" % (path, key))
        return default
    value = obj[key]
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise ConfigError("config.json: %s%s must be %s (got %r)" % (
            path, key, {int: "a whole number", str: "text", bool: "true or false",
                        dict: "an object {...}", list: "a list [...]"}.get(kind, str(kind)), value))
    return value


def _int(obj, path, key, default, lo, hi, required=False):
    v = _get(obj, path, key, int, default, required)
    if v is not None and not lo <= v <= hi:
        raise ConfigError("config.json: %s%s must be between %d and %d (got %d)" % (path, key, lo, hi, v))
    return v


def _pin(obj, path, key, required=False):
    return _int(obj, path, key, None, 0, 63, required)


def _device_id(text):
    ok = 1 <= len(text) <= 40 and text[0] != "-"
    for ch in text:
        ok = ok and (ch in "abcdefghijklmnopqrstuvwxyz0123456789-")
    if not ok:
        raise ConfigError("config.json: device must be 1-40 of a-z 0-9 - as in the site config (got %r)" % text)
    return text


class Config:
    pass


def load(text):
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise ConfigError("config.json is not valid JSON: %s" % e) from None
    if not isinstance(raw, dict):
        raise ConfigError("config.json must hold one JSON object {...}")
    c = Config()
    c.site = _get(raw, "", "site", str, required=True)
    c.device = _device_id(_get(raw, "", "device", str, required=True))
    c.counter = _int(raw, "", "counter", None, 1, 99, required=True)

    wifi = _get(raw, "", "wifi", dict, {})
    c.wifi_ssid = _get(wifi, "wifi.", "ssid", str, "")
    c.wifi_password = _get(wifi, "wifi.", "password", str, "")

    mqtt = _get(raw, "", "mqtt", dict, {})
    c.mqtt_host = _get(mqtt, "mqtt.", "host", str, "192.168.1.10")
    c.mqtt_port = _int(mqtt, "mqtt.", "port", 1883, 1, 65535)
    c.mqtt_user = _get(mqtt, "mqtt.", "user", str, c.device)
    c.mqtt_password = _get(mqtt, "mqtt.", "password", str, None)
    c.keepalive_s = _int(mqtt, "mqtt.", "keepalive_s", 30, 5, 600)
    c.ntp_host = _get(raw, "", "ntp_host", str, None)

    keys = _get(raw, "", "keys", dict, {})
    c.key_pins = {}
    for name, pin in _get(keys, "keys.", "pins", dict, {}).items():
        if name not in KEY_NAMES:
            raise ConfigError("config.json: keys.pins: unknown key %r (known: %s)" % (name, ", ".join(KEY_NAMES)))
        c.key_pins[name] = _pin({name: pin}, "keys.pins.", name, True)
    c.keys_active_low = _get(keys, "keys.", "active_low", bool, True)
    c.matrix = None
    matrix = _get(keys, "keys.", "matrix", dict, None)
    if matrix is not None:
        rows = _get(matrix, "keys.matrix.", "rows", list, required=True)
        cols = _get(matrix, "keys.matrix.", "cols", list, required=True)
        layout = _get(matrix, "keys.matrix.", "layout", list, required=True)
        names = _get(matrix, "keys.matrix.", "keys", dict, required=True)
        for i in range(len(rows)):
            _pin({"r": rows[i]}, "keys.matrix.rows.", "r", True)
        for i in range(len(cols)):
            _pin({"c": cols[i]}, "keys.matrix.cols.", "c", True)
        if len(layout) != len(rows) or [r for r in layout if not isinstance(r, str) or len(r) != len(cols)]:
            raise ConfigError("config.json: keys.matrix.layout needs one string of %d characters per row (%d rows)"
                              % (len(cols), len(rows)))
        for ch, name in names.items():
            if name not in KEY_NAMES:
                raise ConfigError("config.json: keys.matrix.keys: %r -> unknown key %r" % (ch, name))
        c.matrix = {"rows": rows, "cols": cols, "layout": layout, "keys": names}
    if not c.key_pins and c.matrix is None:
        raise ConfigError("config.json: keys needs pins {...} or a matrix {...}: the box has no keys")

    disp = _get(raw, "", "display", dict, {})
    c.display_kind = _get(disp, "display.", "kind", str, "tm1637")
    if c.display_kind not in ("tm1637", "max7219", "none"):
        raise ConfigError("config.json: display.kind must be tm1637, max7219 or none (got %r)" % c.display_kind)
    need = {"tm1637": ("clk", "dio"), "max7219": ("din", "clk", "cs"), "none": ()}[c.display_kind]
    c.display_pins = {}
    for name in need:
        c.display_pins[name] = _pin(disp, "display.", name, True)
    c.brightness = _int(disp, "display.", "brightness", 4, 0, 7)
    c.digits = _int(disp, "display.", "digits", 4, 4, 8)

    led = _get(raw, "", "led", dict, {})
    c.led_pin = _pin(led, "led.", "pin")
    c.led_active_low = _get(led, "led.", "active_low", bool, False)

    timing = _get(raw, "", "timing", dict, {})
    for name in timing:
        if name not in TIMING:
            raise ConfigError("config.json: timing.%s is not a setting (known: %s)" % (name, ", ".join(TIMING)))
    for name in TIMING:
        default, lo, hi = TIMING[name]
        setattr(c, name, _int(timing, "timing.", name, default, lo, hi))
    c.no_show_needs_long_press = _get(raw, "", "no_show_needs_long_press", bool, True)
    c.persist_outbox = _get(raw, "", "persist_outbox", bool, True)

    c.transfer = []
    for t in _get(raw, "", "transfer", list, []):
        if not isinstance(t, dict) or not isinstance(t.get("show"), str):
            raise ConfigError("config.json: each transfer target needs \"show\" (e.g. \"L-2\") and "
                              "to_service or to_counter (got %r)" % (t,))
        if isinstance(t.get("to_service"), str) and "to_counter" not in t:
            c.transfer.append(({"to_service": t["to_service"]}, t["show"]))
        elif isinstance(t.get("to_counter"), int) and "to_service" not in t:
            c.transfer.append(({"to_counter": t["to_counter"]}, t["show"]))
        else:
            raise ConfigError("config.json: transfer target %r needs exactly one of to_service (text) "
                              "or to_counter (number)" % (t,))
    return c
