"""What goes on a printed ticket: a small plain record the kiosk fills from the service's ack."""
from __future__ import annotations

import dataclasses
import datetime as dt
import unicodedata


def nfc(text: str) -> str:
    """Decomposed Vietnamese prints with marks beside the letters: always print NFC."""
    return unicodedata.normalize("NFC", text)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TicketPrint:
    center_name: str
    point_name: str
    service_vi: str
    number: int
    issued_at: dt.datetime              # local time of the site
    ticket_id: str
    service_en: str = ""
    priority_label: str | None = None   # e.g. "Người cao tuổi"; None = normal ticket
    people_ahead: int | None = None
    est_wait_minutes: int | None = None
    # why the wait is long (every counter away), printed under it: "Các quầy đang nghỉ trưa đến 13:00"
    wait_note_vi: str | None = None
    wait_note_en: str | None = None
    qr_url: str = ""                    # what the QR encodes, e.g. f"{public_url}/t/{ticket_id}"
    footer: tuple[str, ...] | None = None   # None: the footer of the printer config
    offline: bool = False               # issued by the kiosk while the service was unreachable
    reprint: bool = False               # printed again after a cut-off job: marked on the ticket

    def __post_init__(self) -> None:
        if not isinstance(self.issued_at, dt.datetime):
            raise TypeError(f"TicketPrint.issued_at must be a datetime, not {self.issued_at!r}")
        if isinstance(self.number, bool) or not isinstance(self.number, int) or self.number < 0:
            raise ValueError(f"TicketPrint.number must be a whole number >= 0, not {self.number!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str):
                object.__setattr__(self, f.name, nfc(value))
        if self.footer is not None:
            object.__setattr__(self, "footer", tuple(nfc(str(x)) for x in self.footer))


def sample_ticket(site=None, number: int = 1005, **overrides) -> TicketPrint:
    """A realistic ticket for previews and tests; from a SiteConfig when one is given."""
    fields = dict(
        center_name="Trung tâm Phục vụ hành chính công phường An Khánh",
        point_name="Điểm tiếp nhận chính",
        service_vi="Chứng thực (sao y, chứng thực chữ ký)",
        service_en="Certification (copies, signatures)",
        number=number, issued_at=dt.datetime(2025, 3, 5, 8, 15),
        ticket_id="01JNQ8Z5K3M2", priority_label="Người cao tuổi",
        people_ahead=4, est_wait_minutes=16, qr_url="http://192.168.1.10:8080/t/01JNQ8Z5K3M2",
    )
    if site is not None:
        svc = site.services[0]
        fields.update(center_name=site.site.center, point_name=site.site.name,
                      service_vi=svc.name_vi, service_en=svc.name_en,
                      number=svc.code * 1000 + (number % 1000),
                      qr_url=f"{site.site.public_url or 'http://qms.local'}/t/{fields['ticket_id']}")
        if site.priority_classes:
            fields["priority_label"] = site.priority_classes[0].name_vi
    fields.update(overrides)
    return TicketPrint(**fields)


def vietnamese_letters() -> list[str]:
    """All 134 accented Vietnamese letter forms (NFC), lower case then upper case."""
    tones = ["", "\u0300", "\u0301", "\u0303", "\u0309", "\u0323"]
    lower = [nfc(base + tone) for base in "aăâeêioôơuưy" for tone in tones]
    lower = [c for c in lower if c not in "aeiouy"] + ["đ"]
    return lower + [c.upper() for c in lower]
