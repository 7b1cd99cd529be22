"""Topic names of protocol v1. All topics live under qms/v1/<site>/."""
ROOT = "qms/v1"


class Topics:
    def __init__(self, site: str):
        self.site = site
        self.base = f"{ROOT}/{site}"

    # device -> service; the role level lets the broker ACL refuse cross-role commands
    def command(self, role: str, device: str) -> str:
        return f"{self.base}/cmd/{role}/{device}"

    @property
    def all_commands(self) -> str:
        return f"{self.base}/cmd/+/+"

    # service -> device: application-level acknowledgement / response
    def ack(self, device: str) -> str:
        return f"{self.base}/ack/{device}"

    # facts
    def event(self, event_type: str) -> str:
        return f"{self.base}/event/{event_type}"

    @property
    def all_events(self) -> str:
        return f"{self.base}/event/#"

    # retained state
    def counter_state(self, number: int) -> str:
        return f"{self.base}/state/counter/{number}"

    def service_state(self, service: str) -> str:
        return f"{self.base}/state/service/{service}"

    @property
    def all_service_states(self) -> str:
        return f"{self.base}/state/service/+"

    @property
    def calls(self) -> str:
        return f"{self.base}/state/calls"

    @property
    def summary(self) -> str:
        return f"{self.base}/state/summary"

    @property
    def all_state(self) -> str:
        return f"{self.base}/state/#"

    @property
    def notice(self) -> str:
        return f"{self.base}/state/notice"

    def status(self, device: str) -> str:
        return f"{self.base}/status/{device}"

    @property
    def all_status(self) -> str:
        return f"{self.base}/status/+"

    def alert(self, kind: str, key: str) -> str:
        return f"{self.base}/alert/{kind}/{key}"

    @property
    def all_alerts(self) -> str:
        return f"{self.base}/alert/#"

    # admin -> one device (only admin devices may publish these; docs/security.md)
    def admin(self, device: str, action: str) -> str:
        return f"{self.base}/admin/{device}/{action}"

    def refill(self, device: str) -> str:
        """A robot's dispenser was refilled: `{"items": N}` or `{}` for full (docs/kiosk.md)."""
        return self.admin(device, "refill")
