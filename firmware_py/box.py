"""The counter's state machine: keys in; commands, board, lights and staff lines out.

The one implementation of the counter's behaviour (docs/counter.md, docs/firmware.md),
MicroPython-safe so the box runs it as `firmware_py.box`; the Pi terminal imports it as
`qms.firmware.box` and only adapts its parts (qms/counter/terminal.py). Injected:
- `keypad.poll()` -> key events ("down", key), ("hold", key), ("up", key, was_long);
- `board.show(text, blink)` on each change (and `board.tick()` every step, if it has one);
- `lamps.show(modes)`: the lamp modes of `lamp_modes()`, every step;
- `link`: `online`, `poll()` (True when just connected), `take()` -> [(topic, payload)];
- `channel`: `send(type_, fields, call)` -> entry (`id`), `withdraw(id)`, `full()`,
  `on_ack(payload)` -> (id, ok, result, error, message_vi) or None, `pump()`, `reconnected()`;
- `clock`: MicroPython's ticks (`ticks_ms`, `ticks_add`, `ticks_diff`);
- `tell(what, *args)`: what happened, for staff (the Pi's Vietnamese lines) or the log;
- `alerts`: the site's staff alerts (`apply(kind, key, payload)`, `alerts`, `ordered()`), or None.

Policy:
- calls (next, recall, no-show, transfer) are refused while the link is down and
  withdrawn when unanswered for `call_timeout_ms`: a citizen is never called minutes
  after the press;
- done, pause/resume and ratings go through the durable outbox and take effect in order
  when the link is back;
- never twice: one id per command, deduplicated by the service; a second press of an
  action in flight, or within `repeat_guard_ms` of the last, is ignored;
- transfer: Transfer opens a chooser, each short press shows the next target, a long
  press sends, any other key cancels (and only cancels), so does `chooser_idle_ms` idle;
- after done, the rating keys rate the ticket just served, once, for `rating_s`;
- a renumbered ticket (an offline ticket the service gave another number: the citizen's
  paper says `printed_number`) is shown on the board as both numbers in turn, the called
  one for `PRINTED_CYCLE_MS - PRINTED_SHOW_MS`, the paper's for `PRINTED_SHOW_MS`, and
  told with both (`tell(..., printed)`), so staff can match the paper handed over.
Everything runs from `step()` in one loop; nothing blocks but a publish.
"""
from . import protocol

CALL_KEYS = {"next": "counter.next", "recall": "counter.recall", "no_show": "counter.no_show"}
IDLE = "----"
ALARM_MS = 3000
PRINTED_CYCLE_MS = 5000         # a renumbered ticket on the board: one cycle of both numbers,
PRINTED_SHOW_MS = 2000          # the paper's number this long of it (the called one first)
RATED_MEMORY = 16

# English notes for the box's console (`tell` of the box); None = nothing to note
NOTES = {
    "link": lambda online, first: None if first and not online else ("link up" if online else "link lost"),
    "sent": lambda type_, msg_id: "sent %s %s" % (type_, msg_id),
    "ok": lambda action, type_, number, target, paused, printed=None: "ok %s%s%s" % (
        type_, " now %d" % number if action == "next" and number is not None else "",
        " (printed %d)" % printed if action == "next" and printed is not None else ""),
    "refused": lambda action, type_, error, message_vi: "refused %s: %s" % (type_, error),
    "no_answer": lambda type_: "no answer: %s withdrawn" % type_,
    "chooser_idle": lambda: "transfer cancelled (idle)",
    "transfer_cancelled": lambda: "transfer cancelled",
    "not_serving": lambda action: "%s: not serving anyone" % action,
    "waiting": lambda action: "%s ignored: waiting for the service" % action,
    "repeated": lambda action: "%s ignored: repeated press" % action,
    "outbox_full": lambda action: "%s refused: too many commands waiting" % action,
    "offline": lambda action: "%s refused: no link to the service" % action,
    "no_targets": lambda: "transfer: no targets configured",
    "choosing": lambda label, index, total: "transfer to %s? (%d/%d)" % (label, index, total),
    "done": lambda number, online, printed=None: None,
    "queued_offline": lambda: "queued until the link is back",
    "no_rating": lambda level: "rating %d ignored: nothing to rate now" % level,
    "already_rated": lambda level: "rating %d ignored: already rated" % level,
    "thanks": lambda level: "rated %d" % level,
    "alert_raised": lambda message: "alert: %s" % message,
    "alert_cleared": lambda message: "alert cleared: %s" % message,
    "bad_state": lambda: "ignored a malformed counter state",
    "bad_alert": lambda topic, error: "ignored a malformed alert on %s: %s" % (topic, error),
    "state": lambda *summary: None,
}


def english(what, *args):
    note = NOTES.get(what)
    return note(*args) if note is not None else what


class Chooser:
    """The transfer chooser while it is open."""

    def __init__(self, targets, touched):
        self.targets = targets          # [(command fields, board text, label)]
        self.index = 0
        self.opened_by_press = False    # the key press that opened it is still down
        self.touched = touched


class Pending:
    """A command sent by this run, awaiting the service's ack."""

    def __init__(self, action, type_, made_at, call, number, target, printed=None):
        self.action, self.type, self.made_at = action, type_, made_at
        self.call = call                # withdrawn when not acknowledged in time
        self.number = number            # the ticket it concerns, for the line on the ack
        self.printed = printed          # ... and its paper's number, if renumbered
        self.target = target            # transfer: the target's label


class CounterBox:
    def __init__(self, cfg, keypad, board, lamps, link, channel, clock, log=print, *,
                 topics=None, tell=None, alerts=None, services=(), idle=IDLE, board_words=True):
        self.cfg, self.keypad, self.board, self.lamps = cfg, keypad, board, lamps
        self.link, self.channel, self.clock, self.log = link, channel, clock, log
        self.topics = topics or channel.topics
        self.state_topic = self.topics.counter_state(cfg.counter)
        self.alert_prefix = self.topics.base + "/alert/"
        self.tell = tell or self._note_english
        self.alerts = alerts            # None: this counter does not follow staff alerts
        self.services = services        # its services: their wait alerts concern it
        self.idle = idle                # the board's text when nobody is served
        self.board_words = board_words  # Err / OFF on the board (the box has no lines)
        self._board_tick = getattr(board, "tick", None)
        self.status = None              # "open" | "paused" | "closed", from the service
        self.view_serving = None        # the ticket being served, from the service
        self.serving_since = None       # (ticket_id, ticks) it was first seen: the board's cycle
        self.done_locally = None        # ticket finished here, its ack still to come
        self.pending = {}               # msg id -> Pending
        self.last_accepted = {}         # action -> ticks of the last accepted press
        self.rating = None              # (ticket_id, until ticks)
        self.rated = []                 # recently rated ticket ids
        self.chooser = None             # Chooser while choosing a transfer target
        self.blink_until = None
        self.alarm_until = None
        self.message = None             # (text, until ticks): a short word on the board
        self.events = []                # what happened, for the log and for tests
        self._was_online = None
        self._shown = None
        self._summary = None

    # ------------------------------------------------------------ time helpers
    def _now(self):
        return self.clock.ticks_ms()

    def _later(self, ms):
        return self.clock.ticks_add(self._now(), int(ms))

    def _before(self, until):
        return until is not None and self.clock.ticks_diff(until, self._now()) > 0

    def _note_english(self, what, *args):
        line = english(what, *args)
        if line is not None:
            self.events.append(line)
            if len(self.events) > 64:
                self.events.pop(0)
            self.log(line)

    def _alarm(self, word, what, *args):
        self.alarm_until = self._later(ALARM_MS)
        if self.board_words:
            self.message = (word, self._later(self.cfg.message_ms))
        self.tell(what, *args)

    # ------------------------------------------------------------ main loop
    def step(self):
        if self.link.poll():
            self.channel.reconnected()
        for topic, payload in self.link.take():
            self.on_message(topic, payload)
        for ev in self.keypad.poll():
            self.on_key(ev)
        self._withdraw_unanswered()
        self.channel.pump()
        if self.rating is not None and not self._before(self.rating[1]):
            self.rating = None
        if self.chooser is not None and self.clock.ticks_diff(
                self._now(), self.chooser.touched) >= self.cfg.chooser_idle_ms:
            self.chooser = None
            self.tell("chooser_idle")
        online = self.link.online
        if online != self._was_online:
            self.tell("link", online, self._was_online is None)
            self._was_online = online
        self.refresh()

    def _withdraw_unanswered(self):
        for msg_id in list(self.pending):
            p = self.pending[msg_id]
            if p.call and self.clock.ticks_diff(self._now(), p.made_at) >= self.cfg.call_timeout_ms:
                # it must not call someone later; it becomes a cmd.void (same id and seq)
                self.channel.withdraw(msg_id)
                del self.pending[msg_id]
                self._alarm("Err", "no_answer", p.type)

    # ------------------------------------------------------------ from the service
    def serving(self):
        s = self.view_serving
        if s is None or s.get("ticket_id") == self.done_locally:
            return None
        return s

    def on_message(self, topic, payload):
        if topic == self.topics.ack:
            got = self.channel.on_ack(payload)
            if got is not None:
                self.on_ack(*got)
        elif topic == self.state_topic:
            view = protocol.parse_counter_state(payload, self.cfg.counter)
            if view is None:
                self.tell("bad_state")
            else:
                self.status, self.view_serving = view
        elif self.alerts is not None and topic.startswith(self.alert_prefix):
            self._on_alert(topic, payload)

    def _on_alert(self, topic, payload):
        kind, _, key = topic[len(self.alert_prefix):].partition("/")
        before = self.alerts.alerts.get((kind, key))
        try:
            change = self.alerts.apply(kind, key, payload)
        except ValueError as e:
            self.tell("bad_alert", topic, str(e))
            return
        if change == "raised":
            self.tell("alert_raised", self.alerts.alerts[(kind, key)].message_vi)
        elif change == "cleared" and before is not None:
            self.tell("alert_cleared", before.message_vi)

    def alerts_for_me(self):
        """Alerts this counter can act on: a long wait in one of its services, its own pause."""
        if self.alerts is None:
            return []
        return [a for a in self.alerts.ordered()
                if (a.kind == "wait" and a.key in self.services)
                or (a.kind == "pause" and a.key == str(self.cfg.counter))]

    def on_ack(self, msg_id, ok, result, error=None, message_vi=None):
        p = self.pending.pop(msg_id, None)
        if p is None:
            return                      # withdrawn, or sent before a restart
        if not ok:
            if p.action == "done":
                self.done_locally = None
                self.rating = None
            self._alarm("Err", "refused", p.action, p.type, error, message_vi)
            return
        state = result.get("state") if isinstance(result, dict) else None
        state = state if isinstance(state, dict) else {}
        number, printed = p.number, p.printed
        if p.action == "next":
            called = state.get("serving")
            called = called if isinstance(called, dict) else {}
            number, printed = called.get("number"), protocol.printed_number(called)
        elif p.action == "recall":
            self.blink_until = self._later(self.cfg.recall_blink_ms)
        self.tell("ok", p.action, p.type, number, p.target, state.get("status") == "paused", printed)

    # ------------------------------------------------------------ keys
    def on_key(self, ev):
        kind, key = ev[0], ev[1]
        if key.startswith("rate"):
            if kind == "down":
                self.rate(int(key[4:]))
            return
        if key == "transfer":
            self._transfer_key(ev)
            return
        trigger = "hold" if key == "no_show" and self.cfg.no_show_needs_long_press else "down"
        if kind == trigger:
            self.act(key)

    def _transfer_key(self, ev):
        ch = self.chooser
        if ch is None:
            if ev[0] == "down":
                self.act("transfer")
                if self.chooser is not None:
                    self.chooser.opened_by_press = True
            return
        if ev[0] == "hold" and not ch.opened_by_press:
            self.act("transfer_confirm")
        elif ev[0] == "up":
            if ch.opened_by_press:
                ch.opened_by_press = False
            elif not ev[2]:
                self.act("transfer")

    def act(self, action):
        """One staff action: a key name, "transfer_confirm", "cancel" or "rate<n>"."""
        if action.startswith("rate"):
            self.rate(int(action[4:]))
            return
        if self.chooser is not None and action not in ("transfer", "transfer_confirm"):
            self.chooser = None         # any other key cancels, and only cancels
            self.tell("transfer_cancelled")
            return
        if action in CALL_KEYS:
            self._call(action, CALL_KEYS[action])
        elif action == "transfer":
            self._choose()
        elif action == "transfer_confirm":
            self._confirm_transfer()
        elif action == "done":
            self._done()
        elif action == "pause":
            self._pause()

    def _guarded(self, action):
        """True when this press must be ignored: the same action is in flight, or was
        accepted a moment ago (a double tap, a bounce, key repeat), or too much waits."""
        for p in self.pending.values():
            if p.action == action:
                self.tell("waiting", action)
                return True
        last = self.last_accepted.get(action)
        if last is not None and self.clock.ticks_diff(self._now(), last) < self.cfg.repeat_guard_ms:
            self.tell("repeated", action)
            return True
        if self.channel.full():
            self._alarm("Err", "outbox_full", action)
            return True
        self.last_accepted[action] = self._now()
        return False

    def _refused_offline(self, action):
        if self.link.online:
            return False
        self._alarm("OFF", "offline", action)
        return True

    def _send(self, action, type_, fields=None, call=False, number=None, target="", printed=None):
        entry = self.channel.send(type_, fields, call)
        self.pending[entry.id] = Pending(action, type_, self._now(), call, number, target, printed)
        self.tell("sent", type_, entry.id)
        return entry

    def _call(self, action, type_, fields=None, target=""):
        serving = self.serving()
        if action != "next" and serving is None:
            self.tell("not_serving", action)
            return
        if self._refused_offline(action) or self._guarded(action):
            return
        self._send(action, type_, fields, True, serving and serving["number"], target,
                   serving and serving.get("printed_number"))

    def _choose(self):
        ch = self.chooser
        if ch is not None:
            ch.index = (ch.index + 1) % len(ch.targets)
            ch.touched = self._now()
        else:
            serving = self.serving()
            if serving is None:
                self.tell("not_serving", "transfer")
                return
            targets = self.transfer_targets(serving.get("service"))
            if not targets:
                self._alarm("Err", "no_targets")
                return
            ch = self.chooser = Chooser(targets, self._now())
        self.tell("choosing", ch.targets[ch.index][2], ch.index + 1, len(ch.targets))

    def transfer_targets(self, own_service):
        """The configured targets as (fields, board text, label), leaving out the service
        the ticket is already in (the service would refuse it)."""
        out = []
        for t in self.cfg.transfer:
            if own_service is None or t[0].get("to_service") != own_service:
                out.append((t[0], t[1], t[2] if len(t) > 2 else t[1]))
        return out

    def _confirm_transfer(self):
        ch, self.chooser = self.chooser, None
        if ch is not None:
            fields, _, label = ch.targets[ch.index]
            self._call("transfer", "counter.transfer", fields, label)

    def _done(self):
        serving = self.serving()
        if serving is None:
            self.tell("not_serving", "done")
            return
        if self._guarded("done"):
            return
        printed = serving.get("printed_number")
        self._send("done", "counter.done", None, False, serving["number"], printed=printed)
        self.done_locally = serving["ticket_id"]
        self.rating = (serving["ticket_id"], self._later(self.cfg.rating_s * 1000))
        self.tell("done", serving["number"], self.link.online, printed)

    def _pause(self):
        if self._guarded("pause"):
            return
        self._send("pause", "counter.resume" if self.status == "paused" else "counter.pause")
        if not self.link.online:
            self.tell("queued_offline")

    def rate(self, level):
        r = self.rating
        if r is None or not self._before(r[1]):
            self.tell("no_rating", level)
            return
        if r[0] in self.rated:
            self.tell("already_rated", level)
            return
        self.rated.append(r[0])         # one rating per ticket, even before the ack
        if len(self.rated) > RATED_MEMORY:
            self.rated.pop(0)
        self.rating = None
        self._send("rate", "rating.submit", {"ticket_id": r[0], "level": level})
        self.tell("thanks", level)

    # ------------------------------------------------------------ outputs
    def board_text(self):
        """(text, blinking) for the board now."""
        if self.message is not None:
            if self._before(self.message[1]):
                return self.message[0], False
            self.message = None
        if self.chooser is not None:
            return self.chooser.targets[self.chooser.index][1], False
        serving = self.serving()
        if serving is None:
            return self.idle, False
        return str(self._board_number(serving)), self._before(self.blink_until)

    def _board_number(self, serving):
        """The called number; for a renumbered ticket, the paper's number in turn."""
        printed = serving.get("printed_number")
        if printed is None:
            return serving["number"]
        since = self.serving_since
        if since is None or since[0] != serving["ticket_id"]:
            since = self.serving_since = (serving["ticket_id"], self._now())
        phase = self.clock.ticks_diff(self._now(), since[1]) % PRINTED_CYCLE_MS
        return printed if phase >= PRINTED_CYCLE_MS - PRINTED_SHOW_MS else serving["number"]

    def lamp_modes(self):
        """The Pi's three lights (busy, paused, link: off/on/blink/slow) and the box's one
        status LED (led: alarm/link_down/paused/on/off), from the same state."""
        alarm = self._before(self.alarm_until)
        online = self.link.online
        serving = self.serving() is not None
        paused = self.status == "paused"
        pause_pending = False
        for p in self.pending.values():
            pause_pending = pause_pending or p.action == "pause"
        return {
            "busy": "on" if serving else "off",
            "paused": "blink" if pause_pending else ("on" if paused else "off"),
            # one attention light: fast blink = an action failed, on = no link, slow = an alert
            "link": "blink" if alarm else "on" if not online else "slow" if self.alerts_for_me() else "off",
            "led": "alarm" if alarm else "link_down" if not online else "paused" if paused
            else "on" if serving else "off",
        }

    def led_mode(self):
        return self.lamp_modes()["led"]

    def summary(self):
        """What the Pi's state line shows: (counter, serving number, paused, online,
        commands waiting, rating open, alerts, the serving ticket's paper number if renumbered)."""
        serving = self.serving()
        return (self.cfg.counter, serving["number"] if serving else None, self.status == "paused",
                self.link.online, len(self.pending), self.rating is not None,
                len(self.alerts) if self.alerts is not None else 0,
                serving.get("printed_number") if serving else None)

    def refresh(self):
        shown = self.board_text()
        if shown != self._shown:
            self._shown = shown
            self.board.show(shown[0], shown[1])
        if self._board_tick is not None:
            self._board_tick()
        self.lamps.show(self.lamp_modes())
        summary = self.summary()
        if summary != self._summary:
            self._summary = summary
            self.tell("state", *summary)
