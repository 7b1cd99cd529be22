"""Role sections of the site config, each owned by the package that uses it."""
from counter.config import CounterTerminalConfig
from display.config import DisplayConfig, VoiceConfig
from drivers.config import PrinterConfig
from kiosk.config import KioskConfig
from service.web_config import WebConfig
from service.report_config import ReportConfig

__all__ = [
    "CounterTerminalConfig", "DisplayConfig", "KioskConfig", "PrinterConfig",
    "ReportConfig", "VoiceConfig", "WebConfig",
]
