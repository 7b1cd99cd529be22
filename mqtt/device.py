"""`Device`: what every device role needs to talk to the service, in one object:
an MqttLink (with its retained status and last will), a durable outbox and the
command channel that sends it."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from qms.config.site import SiteConfig
from qms.mqtt.channel import CommandChannel
from qms.mqtt.client import MqttLink, OnMessage
from qms.mqtt.outbox import Outbox
from qms.protocol.topics import Topics


class Device:
    def __init__(self, cfg: SiteConfig, device_id: str, role: str, *,
                 outbox_path: str | Path | None = None,
                 subscriptions: Iterable[tuple[str, int]] = (),
                 on_message: OnMessage | None = None, status: dict | None = None,
                 resend_after: float = 3.0, on_connect=None, on_disconnect=None):
        self.cfg = cfg
        self.id = device_id
        self.role = role
        self.topics = Topics(cfg.site.id)
        path = outbox_path or cfg.state_dir() / f"{device_id}.outbox.sqlite"
        self.outbox = Outbox(path, device_id)
        self.link = MqttLink(cfg.mqtt, device_id, subscriptions=subscriptions, on_message=on_message,
                             status_topic=self.topics.status(device_id),
                             status={"role": role, **(status or {})},
                             config_dir=Path(cfg.source).resolve().parent if cfg.source else None,
                             on_connect=on_connect, on_disconnect=on_disconnect)
        self.channel = CommandChannel(self.link, self.outbox, self.topics, role,
                                      resend_after=resend_after)

    def start(self) -> Device:
        self.channel.start()
        self.link.start()
        return self

    def stop(self) -> None:
        self.channel.stop()
        self.link.stop()
        self.outbox.close()

    @property
    def online(self) -> bool:
        return self.link.connected.is_set()

    def send(self, type_: str, **fields) -> dict:
        return self.channel.send(type_, **fields)

    def request(self, type_: str, timeout: float, **fields):
        return self.channel.request(type_, timeout, **fields)
