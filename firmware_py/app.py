"""Puts a counter box together from its parts; the box (main.py) and the tests both
build it here, with real or simulated parts."""
from . import protocol
from .box import CounterBox
from .channel import Channel
from .keys import KeyPad
from .link import MqttLink
from .outbox import Outbox
from .segments import BlinkingBoard


def build(cfg, *, key_sources, board, led, client_factory, clock, store, rng, network=None,
          log=print):
    topics = protocol.Topics(cfg.site, cfg.device)
    outbox = Outbox(store, cfg.device, rng, clock)
    if outbox.problem:
        log(outbox.problem)
    link = MqttLink(
        client_factory, clock, rng,
        subscriptions=[(topics.ack, 1), (topics.counter_state(cfg.counter), 1)],
        will=(topics.status, protocol.status_payload(cfg.device, 0, False, cfg.counter)),
        online_payload=lambda: protocol.status_payload(cfg.device, clock.unix_ms(), True, cfg.counter),
        network=network, keepalive_s=cfg.keepalive_s, log=log)
    channel = Channel(link, outbox, topics, clock, cfg.resend_ms)
    keypad = KeyPad(key_sources, clock, cfg.debounce_ms, cfg.long_press_ms)
    return CounterBox(cfg, keypad, BlinkingBoard(board, clock), led, link, channel, clock, log)
