"""What a point reads from the city's central tier: its public read-only API over HTTP
(`answers.py`: the answers; `client.py`: the cached background reader). Used by the
point's `qms web` (ticket page, board) and by the hall display (`qms display`); neither
imports the city's own code. See docs/city.md."""
