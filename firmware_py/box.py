"""The counter box: keys in; commands, the number display and the status LED out.

Same behaviour as the Pi counter terminal (qms/counter/terminal.py, docs/counter.md):
- calls (next, recall, no-show, transfer) are refused while the link is down (the
  display says OFF) and withdrawn when unanswered for `call_timeout_ms` (Err);
- done, pause/resume and ratings are kept (on flash) and take effect in order when the
  link is back;
- never twice: one id per command, deduplicated by the service; a second press of an
  action in flight, or within `repeat_guard_ms` of the last, is ignored;
- transfer: Transfer opens a chooser (L-<code> services, q-<n> counters), each short
  press shows the next target, a long press sends, any other key cancels;
- after done, the rating keys 1..4 rate the ticket just served, once, for `rating_s`.
Everything runs from `step()` in one loop; nothing blocks but a publish.
"""
from . import protocol

CALL_KEYS = {"next": "counter.next", "recall": "counter.recall", "no_show": "counter.no_show"}
IDLE = "----"
ALARM_MS = 3000
RATED_MEMORY = 16


class CounterBox:
    def __init__(self, cfg, keypad, board, led, link, channel, clock, log=print):
        self.cfg, self.keypad, self.board, self.led = cfg, keypad, board, led
        self.link, self.channel, self.clock, self.log = link, channel, clock, log
        self.topics = channel.topics
        self.state_topic = self.topics.counter_state(cfg.counter)
        self.status = None            # "open" | "paused" | "closed", from the service
        self.view_serving = None      # the ticket being served, from the service
        self.done_locally = None      # ticket finished here, its ack still to come
        self.pending = {}             # msg id -> (action, number) awaiting an ack
        self.last_accepted = {}       # action -> ticks of the last accepted press
        self.rating = None            # (ticket_id, until ticks)
        self.rated = []               # recently rated ticket ids
        self.chooser = None           # [index, opened_by_press, touched ticks, targets]
        self.blink_until = None
        self.alarm_until = None
        self.message = None           # (text, until ticks): a short word on the display
        self.events = []              # what happened, for the log and for tests

    # ------------------------------------------------------------ time helpers
    def _now(self):
        return self.clock.ticks_ms()

    def _later(self, ms):
        return self.clock.ticks_add(self._now(), ms)

    def _before(self, until):
        return until is not None and self.clock.ticks_diff(until, self._now()) > 0

    def _note(self, what):
        self.events.append(what)
        if len(self.events) > 64:
            self.events.pop(0)
        self.log(what)

    def _alarm(self, text, why):
        self.alarm_until = self._later(ALARM_MS)
        self.message = (text, self._later(self.cfg.message_ms))
        self._note(why)

    # ------------------------------------------------------------ main loop
    def step(self):
        if self.link.poll():
            self._note("link up")
            self.channel.reconnected()
        for topic, payload in self.link.take():
            self.on_message(topic, payload)
        for ev in self.keypad.poll():
            self.on_key(ev)
        for msg_id, type_ in self.channel.expired():
            self.pending.pop(msg_id, None)
            self._alarm("Err", "no answer: %s withdrawn" % type_)
        self.channel.pump()
        if self.rating is not None and not self._before(self.rating[1]):
            self.rating = None
        if self.chooser is not None and self.clock.ticks_diff(self._now(), self.chooser[2]) >= self.cfg.chooser_idle_ms:
            self.chooser = None
            self._note("transfer cancelled (idle)")
        self.refresh()

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
                self._on_ack(*got)
        elif topic == self.state_topic:
            view = protocol.parse_counter_state(payload, self.cfg.counter)
            if view is None:
                self._note("ignored a malformed counter state")
            else:
                self.status, self.view_serving = view

    def _on_ack(self, entry, ok, result, error):
        action, number = self.pending.pop(entry.id, (None, None))
        if not ok:
            if action == "done":
                self.done_locally = None
                self.rating = None
            self._alarm("Err", "refused %s: %s" % (entry.type, error))
            return
        state = result.get("state")
        if isinstance(state, dict) and state.get("counter") == self.cfg.counter:
            view = protocol.parse_counter_state(protocol.encode(state), self.cfg.counter)
            if view is not None:
                self.status, self.view_serving = view
        if action == "recall":
            self.blink_until = self._later(self.cfg.recall_blink_ms)
        serving = self.serving()
        self._note("ok %s%s" % (entry.type, " now %d" % serving["number"] if serving else ""))

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
                    self.chooser[1] = True
            return
        if ev[0] == "hold" and not ch[1]:
            self.act("transfer_confirm")
        elif ev[0] == "up":
            if ch[1]:
                ch[1] = False           # the press that opened the chooser
            elif not ev[2]:
                self.act("transfer")

    def act(self, action):
        if self.chooser is not None and action not in ("transfer", "transfer_confirm"):
            self.chooser = None         # any other key cancels, and only cancels
            self._note("transfer cancelled")
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
        for msg_id in self.pending:
            if self.pending[msg_id][0] == action:
                self._note("%s ignored: waiting for the service" % action)
                return True
        last = self.last_accepted.get(action)
        if last is not None and self.clock.ticks_diff(self._now(), last) < self.cfg.repeat_guard_ms:
            self._note("%s ignored: repeated press" % action)
            return True
        if self.channel.outbox.full():
            self._alarm("Err", "%s refused: too many commands waiting" % action)
            return True
        self.last_accepted[action] = self._now()
        return False

    def _refused_offline(self, action):
        if self.link.online:
            return False
        self._alarm("OFF", "%s refused: no link to the service" % action)
        return True

    def _send(self, action, type_, fields=None, call=False, number=None):
        entry = self.channel.send(type_, fields, call)
        self.pending[entry.id] = (action, number)
        self._note("sent %s %s" % (type_, entry.id))
        return entry

    def _call(self, action, type_, fields=None):
        serving = self.serving()
        if action != "next" and serving is None:
            self._note("%s: not serving anyone" % action)
            return
        if self._refused_offline(action) or self._guarded(action):
            return
        self._send(action, type_, fields, True, serving and serving["number"])

    def _choose(self):
        if self.chooser is not None:
            self.chooser[0] = (self.chooser[0] + 1) % len(self.chooser[3])
            self.chooser[2] = self._now()
            return
        serving = self.serving()
        if serving is None:
            self._note("transfer: not serving anyone")
            return
        # not back to the service the ticket is already in: the service would refuse it
        own = serving.get("service")
        targets = [t for t in self.cfg.transfer if own is None or t[0].get("to_service") != own]
        if not targets:
            self._alarm("Err", "transfer: no targets configured")
            return
        self.chooser = [0, False, self._now(), targets]

    def _confirm_transfer(self):
        ch, self.chooser = self.chooser, None
        if ch is not None:
            self._call("transfer", "counter.transfer", ch[3][ch[0]][0])

    def _done(self):
        serving = self.serving()
        if serving is None:
            self._note("done: not serving anyone")
            return
        if self._guarded("done"):
            return
        self._send("done", "counter.done", None, False, serving["number"])
        self.done_locally = serving["ticket_id"]
        self.rating = (serving["ticket_id"], self._later(self.cfg.rating_s * 1000))

    def _pause(self):
        if self._guarded("pause"):
            return
        type_ = "counter.resume" if self.status == "paused" else "counter.pause"
        self._send("pause", type_)

    def rate(self, level):
        r = self.rating
        if r is None:
            self._note("rating %d ignored: nothing to rate now" % level)
            return
        if r[0] in self.rated:
            self._note("rating %d ignored: already rated" % level)
            return
        self.rated.append(r[0])         # one rating per ticket, even before the ack
        if len(self.rated) > RATED_MEMORY:
            self.rated.pop(0)
        self.rating = None
        self._send("rate", "rating.submit", {"ticket_id": r[0], "level": level})

    # ------------------------------------------------------------ outputs
    def board_text(self):
        """(text, lit) for the display now."""
        if self.message is not None:
            if self._before(self.message[1]):
                return self.message[0], True
            self.message = None
        if self.chooser is not None:
            return self.chooser[3][self.chooser[0]][1], True
        serving = self.serving()
        if serving is None:
            return IDLE, True
        text = str(serving["number"])
        if self._before(self.blink_until):
            return text, self._now() % 500 < 300
        return text, True

    def led_mode(self):
        if self._before(self.alarm_until):
            return "alarm"
        if not self.link.online:
            return "link_down"
        if self.status == "paused":
            return "paused"
        return "on" if self.serving() is not None else "off"

    def refresh(self):
        text, lit = self.board_text()
        self.board.show(text, lit)
        self.led.set(self.led_mode())
        self.led.tick()
