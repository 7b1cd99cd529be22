"""The offline numbering rule: which numbers a kiosk may print while the service cannot answer.

Each kiosk/robot owns a fixed block at the top of every service's range: with 50 numbers
per kiosk and 999 as the last number, the first kiosk in the config prints 950-999, the
second 900-949, ... The service never issues those numbers itself (`online_last`), and no
two kiosks share a block, so an offline number cannot collide with any other ticket of
the day. Pure functions of the site config: the queue core and the kiosk both use them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qms.config.site import SiteConfig


def offline_block(cfg: SiteConfig, service_id: str, device: str) -> range:
    """Numbers (without the service digit) that `device` may print while offline; empty
    for a device that is not a kiosk or robot."""
    s = cfg.service(service_id)
    kiosks = cfg.kiosk_ids()
    if device not in kiosks:
        return range(0)
    b = cfg.queue.offline_block
    i = kiosks.index(device)
    hi = s.last - i * b
    return range(hi - b + 1, hi + 1)


def online_last(cfg: SiteConfig, service_id: str) -> int:
    """The last number (without the service digit) the service itself may issue."""
    return cfg.service(service_id).last - len(cfg.kiosk_ids()) * cfg.queue.offline_block


def next_offline_number(cfg: SiteConfig, service_id: str, device: str, last_used: int | None) -> int | None:
    """The full ticket number (code*1000 + n) of `device`'s next offline ticket for the
    service, given the last number of its block it used today (None: none yet); None when
    the block is used up (or the device has none)."""
    block = offline_block(cfg, service_id, device)
    n = block.start if last_used is None else last_used + 1
    if n not in block:
        return None
    return cfg.service(service_id).code * 1000 + n
