"""The USB transport through real python-escpos, pyusb and libusb: with no such printer
plugged in, the kiosk is told clearly and nothing is counted as printed. (Printing over USB
itself needs a printer on the bus; the serial, network and file transports are tested end
to end with a simulated printer.)"""
import pytest

from qms.config.printer import PrinterConfig
from qms.drivers.printer import open_printer
from qms.drivers.printer_status import PrinterStatus
from qms.drivers.ticket import sample_ticket


def test_an_unplugged_usb_printer_is_offline_with_a_clear_reason(tmp_path):
    from qms.drivers.printer import PrinterOffline
    printer = open_printer(PrinterConfig(backend="usb", usb_vendor=0x0416, usb_product=0x5011), tmp_path)
    assert printer.status() is PrinterStatus.OFFLINE
    with pytest.raises(PrinterOffline, match=r"USB printer 0416:5011.*not found"):
        printer.print_ticket(sample_ticket())


def test_usb_needs_vendor_and_product(tmp_path):
    from qms.drivers.printer_status import PrinterConfigError
    with pytest.raises(PrinterConfigError, match="usb_vendor and printer.usb_product"):
        open_printer(PrinterConfig(backend="usb"), tmp_path)


def test_usb_endpoints_and_write_timeout(tmp_path):
    """0416:5011 clones use bulk endpoints 0x81/0x03 (python-escpos assumes 0x82/0x01); the
    config can set others; every USB write has a timeout (python-escpos' 0 waits forever)."""
    from qms.drivers.printer import make_transport
    known = make_transport(PrinterConfig(backend="usb", usb_vendor=0x0416, usb_product=0x5011))
    assert (known.in_ep, known.out_ep) == (0x81, 0x03)
    esc = known._make()
    assert (esc.in_ep, esc.out_ep, esc.timeout) == (0x81, 0x03, 3000)
    other = make_transport(PrinterConfig(backend="usb", usb_vendor=0x04B8, usb_product=0x0202,
                                         usb_in_ep=0x82, usb_out_ep=0x02, write_timeout_ms=1500))
    esc = other._make()
    assert (esc.in_ep, esc.out_ep, esc.timeout) == (0x82, 0x02, 1500)
