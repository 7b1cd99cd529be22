"""The kiosk's voice: procedure texts are read with numbers in words, through the hall
display's voice stack (espeak-ng, pygame.mixer on SDL's dummy audio driver)."""
from __future__ import annotations

import re
import time
import tomllib

import pytest
from support.site import free_port, make_config
from support.wait import wait_until

from qms.config.site import load_config
from qms.kiosk.app import KioskApp
from qms.kiosk.catalog import DEFAULT, parse_catalog
from qms.kiosk.printing import MemoryPrinter
from qms.kiosk.spoken import spoken
from qms.kiosk.voice import VoiceSpeaker, make_speaker
from qms.sim.kiosk_testing import tap

# what a clerk would say, written out by hand
SPOKEN = [
    ("10.000 đ/trường hợp", "mười nghìn đồng một trường hợp"),
    ("2.000 đ/trang; tối đa 200.000 đ/bản", "hai nghìn đồng một trang; tối đa hai trăm nghìn đồng một bản"),
    ("50.000 đ/hợp đồng; sửa đổi, bổ sung 30.000 đ",
     "năm mươi nghìn đồng một hợp đồng; sửa đổi, bổ sung ba mươi nghìn đồng"),
    ("thường 50.000–100.000 đ", "thường năm mươi nghìn đến một trăm nghìn đồng"),
    ("Không quá 02 ngày làm việc", "Không quá hai ngày làm việc"),
    ("Khoảng 15–30 phút", "Khoảng mười lăm đến ba mươi phút"),
    ("nộp sau 15 giờ", "nộp sau mười lăm giờ"),
    ("trẻ dưới 6 tuổi, trong 60 ngày", "trẻ dưới sáu tuổi, trong sáu mươi ngày"),
    ("(Mẫu 04/ĐK)", "(Mẫu không bốn ĐK)"),
    ("(Mẫu TK1-TS)", "(Mẫu TK một TS)"),
    ("từ 07:30 đến 17:00", "từ bảy giờ ba mươi đến mười bảy giờ"),
    ("ngày 24/11/2026", "ngày hai mươi tư tháng mười một năm hai nghìn không trăm hai mươi sáu"),
    ("1,5 ngày; 50%; thứ 4; thứ 1", "một phẩy năm ngày; năm mươi phần trăm; thứ tư; thứ nhất"),
    ("số 1005, 1.000.000 đồng", "số một nghìn không trăm linh năm, một triệu đồng"),
]


@pytest.mark.parametrize("text,said", SPOKEN)
def test_numbers_are_read_as_words(text, said):
    assert spoken(text, "vi") == said


def test_south_reading():
    assert spoken("105.000 đ", "vi", "south") == "một trăm lẻ năm ngàn đồng"


def test_every_procedure_of_the_default_catalog_is_spoken_without_digits():
    services = {p["service"] for p in tomllib.loads(DEFAULT.read_text(encoding="utf-8"))["procedures"]}
    cat = parse_catalog(DEFAULT, services)
    assert len(cat.procedures) >= 15
    for p in cat.procedures:
        said = spoken(p.text("vi"), "vi")
        assert not re.search(r"\d", said), said
        assert " đ " not in f" {said} ", said
    assert spoken("Fee: 10,000 VND per case", "en") == "Fee: 10,000 dong per case"


@pytest.fixture
def voiced_app(tmp_path):
    cfg = load_config(make_config(tmp_path, free_port()))      # offline kiosk: nothing listens
    speaker = make_speaker(cfg)
    assert isinstance(speaker, VoiceSpeaker)
    app = KioskApp(cfg, "kiosk-1", size=(1024, 600), printer=MemoryPrinter(), speaker=speaker,
                   db=tmp_path / "k.sqlite").start()
    yield app
    app.stop()


def test_read_aloud_speaks_the_fee_in_words_in_both_languages(voiced_app):
    app, spk = voiced_app, voiced_app.speaker
    tap(app, ("procedures",))
    tap(app, ("proc_service", "chung-thuc"))
    tap(app, ("read", 1))                                   # Chứng thực chữ ký: 10.000 đ/trường hợp
    assert wait_until(lambda: spk.said, 15, step=app.step)
    assert spk.said[0].startswith("Chứng thực chữ ký.")
    assert "Lệ phí: mười nghìn đồng một trường hợp." in spk.said[0]
    assert not re.search(r"\d", spk.said[0])
    assert spk.last_wav[:4] == b"RIFF" and len(spk.last_wav) > 5 * 22050   # seconds of speech
    tap(app, ("lang",))
    tap(app, ("read", 1))
    assert wait_until(lambda: len(spk.said) == 2, 15, step=app.step)
    assert spk.said[1].startswith("Signature certification.") and "10,000 dong per case" in spk.said[1]


def test_a_new_text_cuts_the_one_being_read(voiced_app):
    spk = voiced_app.speaker
    long_text = voiced_app.catalog.for_service("chung-thuc")[0].text("vi")
    spk.say(long_text)
    assert wait_until(lambda: spk.said and spk.player.channel.get_busy(), 15)
    length = spk.player.sound(spk.last_wav).get_length()
    assert length > 8                                       # a paragraph: many seconds
    t0 = time.monotonic()
    spk.say("Xin chào")
    assert wait_until(lambda: len(spk.said) == 2 and not spk.busy(), 15)
    assert time.monotonic() - t0 < length / 2               # the paragraph did not play to its end
    assert spk.said[1] == "Xin chào"
