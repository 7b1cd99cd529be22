"""Text for a 4-digit 7-segment display, and the two common driver chips, bit-banged.

A cell is one byte: bit 0..6 = segments a..g, bit 7 = the decimal point. The pins are
injected objects with `.value(v)` (machine.Pin on the box, fakes in tests), and
`delay_us` paces the clock lines (time.sleep_us on the box).
"""

#    a
#  f   b
#    g
#  e   c
#    d   .
FONT = {
    "0": 0x3F, "1": 0x06, "2": 0x5B, "3": 0x4F, "4": 0x66, "5": 0x6D, "6": 0x7D, "7": 0x07,
    "8": 0x7F, "9": 0x6F, "-": 0x40, "_": 0x08, " ": 0x00,
    "A": 0x77, "b": 0x7C, "C": 0x39, "c": 0x58, "d": 0x5E, "E": 0x79, "F": 0x71, "G": 0x3D,
    "H": 0x76, "L": 0x38, "n": 0x54, "o": 0x5C, "O": 0x3F, "P": 0x73, "q": 0x67, "r": 0x50,
    "S": 0x6D, "t": 0x78, "U": 0x3E, "u": 0x1C, "y": 0x6E,
}
DP = 0x80


def render(text, digits=4):
    """Cells for `text`, right-aligned; '.' lights the point of the cell before it. Letters
    the display cannot draw become blanks; too long keeps the rightmost cells (a number's end)."""
    cells = []
    for ch in text:
        if ch == "." and cells:
            cells[-1] |= DP
        else:
            cells.append(FONT.get(ch, FONT.get(ch.upper(), FONT.get(ch.lower(), 0))))
    cells = cells[-digits:]
    return [0] * (digits - len(cells)) + cells


class TM1637:
    """Titan Micro TM1637: a two-wire bus (CLK, DIO), LSB first, the chip acks each byte.
    DIO must be open-drain with a pull-up (the usual modules carry 10k): we release it
    (value 1) for the ack clock instead of driving against the chip."""

    def __init__(self, clk, dio, delay_us, brightness=4, digits=4):
        self.clk, self.dio, self.delay = clk, dio, delay_us
        self.brightness = max(0, min(7, brightness))
        self.digits = digits
        clk.value(1)
        dio.value(1)

    def _tick(self):
        self.delay(2)

    def _start(self):
        self.dio.value(0)          # DIO falls while CLK is high
        self._tick()
        self.clk.value(0)
        self._tick()

    def _stop(self):
        self.dio.value(0)
        self._tick()
        self.clk.value(1)
        self._tick()
        self.dio.value(1)          # DIO rises while CLK is high
        self._tick()

    def _byte(self, b):
        for i in range(8):
            self.dio.value((b >> i) & 1)
            self._tick()
            self.clk.value(1)
            self._tick()
            self.clk.value(0)
            self._tick()
        self.dio.value(1)          # release DIO: the chip pulls it low to ack
        self.clk.value(1)
        self._tick()
        self.clk.value(0)
        self._tick()

    def _frame(self, data):
        self._start()
        for b in data:
            self._byte(b)
        self._stop()

    def show(self, cells):
        self._frame([0x40])                        # write data, auto-increment address
        self._frame([0xC0] + list(cells))          # from address 0 (the leftmost cell)
        self._frame([0x88 | self.brightness])      # display on, brightness 0..7


def _max7219_cell(cell):
    # MAX7219 raw (no-decode) bits: D7=DP, D6=A, D5=B, D4=C, D3=D, D2=E, D1=F, D0=G
    out = 0x80 if cell & DP else 0
    for seg in range(7):                           # a..g -> D6..D0
        if cell & (1 << seg):
            out |= 1 << (6 - seg)
    return out


class MAX7219:
    """Maxim MAX7219: 16-bit words (register, data) shifted MSB first on DIN, clocked on
    CLK's rising edge, latched when CS/LOAD rises. Digit register 1 is the rightmost cell,
    as on the common ready-made modules."""

    def __init__(self, din, clk, cs, delay_us, brightness=4, digits=4):
        self.din, self.clk, self.cs, self.delay = din, clk, cs, delay_us
        self.digits = digits
        cs.value(1)
        clk.value(0)
        self._write(0x0F, 0)                        # display test off
        self._write(0x09, 0)                        # no BCD decode: raw segments
        self._write(0x0B, digits - 1)               # scan limit
        self._write(0x0A, max(0, min(15, brightness * 2)))
        self._write(0x0C, 1)                        # leave shutdown

    def _write(self, register, data):
        word = (register << 8) | data
        self.cs.value(0)
        for i in range(15, -1, -1):
            self.clk.value(0)
            self.din.value((word >> i) & 1)
            self.delay(1)
            self.clk.value(1)
            self.delay(1)
        self.clk.value(0)
        self.cs.value(1)

    def show(self, cells):
        n = len(cells)
        for i in range(n):
            self._write(n - i, _max7219_cell(cells[i]))


class Board:
    """What the box shows: text (rendered once) and blinking; the chip is written only
    when what must be lit changes."""

    def __init__(self, driver, digits=4):
        self.driver = driver
        self.digits = digits
        self.shown = None
        self.text = None

    def show(self, text, lit=True):
        cells = render(text, self.digits) if lit else [0] * self.digits
        if cells != self.shown:
            self.driver.show(cells)
            self.shown = cells
        self.text = text if lit else ""


class BlinkingBoard:
    """The state machine's board interface over a `Board`: `show(text, blink)` on each
    change; a segment chip cannot blink by itself, so `tick()` (every loop turn) lights
    a blinking text 300 ms of every 500."""

    def __init__(self, board, clock):
        self.board, self.clock = board, clock
        self.text, self.blink = None, False

    def show(self, text, blink=False):
        self.text, self.blink = text, blink
        self.tick()

    def tick(self):
        if self.text is not None:
            self.board.show(self.text, not self.blink or self.clock.ticks_ms() % 500 < 300)
