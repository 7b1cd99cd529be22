"""The procedure catalog the kiosk shows: a TOML data file the center edits without code.

A broken file must never take the kiosk down: `load_catalog` returns the bundled
default with the problem spelled out in `Catalog.problems` (logged, and printed by
`qms kiosk check-catalog`). Procedures naming a service the site does not have are
skipped with a message, the rest are kept.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

import msgspec

from qms.config.site import to_nfc

DEFAULT = Path(__file__).with_name("catalog_default.toml")
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=400)]


class Procedure(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    service: str
    name_vi: Text
    name_en: Text
    documents_vi: list[Text]
    documents_en: list[Text] = []
    fee_vi: Text
    fee_en: Text
    time_vi: Text
    time_en: Text
    note_vi: str = ""
    note_en: str = ""

    def text(self, lang: str) -> str:
        """The whole procedure as sentences, for reading aloud."""
        if lang == "en":
            docs = "; ".join(self.documents_en or self.documents_vi)
            parts = [self.name_en + ".", f"Documents: {docs}.", f"Fee: {self.fee_en}.",
                     f"Processing time: {self.time_en}.", self.note_en]
        else:
            docs = "; ".join(self.documents_vi)
            parts = [self.name_vi + ".", f"Hồ sơ gồm: {docs}.", f"Lệ phí: {self.fee_vi}.",
                     f"Thời gian giải quyết: {self.time_vi}.", self.note_vi]
        return " ".join(p for p in parts if p)


class _File(msgspec.Struct, forbid_unknown_fields=True):
    procedures: list[Procedure] = []


class Catalog:
    def __init__(self, procedures: list[Procedure], source: str, problems: list[str] | None = None):
        self.procedures = procedures
        self.source = source
        self.problems = problems or []

    def for_service(self, service: str) -> list[Procedure]:
        return [p for p in self.procedures if p.service == service]


def parse_catalog(path: Path, service_ids: set[str]) -> Catalog:
    """Raise ValueError with a message naming the file and the entry."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML: {e}") from None
    try:
        data = msgspec.convert(to_nfc(raw), _File)
    except msgspec.ValidationError as e:
        where = str(e).replace("`$.", "`").replace("`$", "`")
        raise ValueError(f"{path}: {where}") from None
    kept, problems = [], []
    for i, p in enumerate(data.procedures):
        if p.service not in service_ids:
            problems.append(f"{path}: procedures[{i}] ({p.name_vi}): unknown service {p.service!r}; skipped")
        else:
            kept.append(p)
    return Catalog(kept, str(path), problems)


def load_catalog(path: str | Path | None, service_ids: set[str]) -> Catalog:
    """The center's catalog, or the bundled default if it is missing or broken."""
    if path:
        try:
            return parse_catalog(Path(path), service_ids)
        except ValueError as e:
            default = parse_catalog(DEFAULT, service_ids)
            default.problems.insert(0, f"{e} — using the bundled catalog instead")
            return default
    return parse_catalog(DEFAULT, service_ids)
