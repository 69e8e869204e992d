"""Progress on stderr for long CLI work: a tqdm bar on a terminal, plain lines elsewhere.

On a terminal the bar redraws itself in place (carriage returns). In a log
file, a pipe or a SLURM output file carriage returns only pile up, so there a
:class:`Progress` prints one plain line every ``every_pct`` per cent or every
``every_s`` seconds, whichever comes first, and a last line when it closes.
The ETA is the remaining work at the step rate measured since the bar opened.
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO, Any

#: Non-terminal reporting: a line every this many per cent of the work ...
EVERY_PCT = 10.0
#: ... or every this many seconds, whichever comes first.
EVERY_S = 60.0


def _is_tty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = round(seconds)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """Work from ``initial`` to ``total`` units, shown on ``file`` (stderr by default).

    ``update(n, phase=..., postfix=...)`` sets the position (absolute, not an
    increment); ``phase`` names the current stage ("spin-up", "simulate") and
    is shown as the description. ``quiet=True`` shows nothing. Close it (or
    use it as a context manager) before anything else is printed: a closed
    terminal bar ends its line, so a following error starts on a fresh one.
    """

    def __init__(
        self,
        total: float | None,
        *,
        desc: str,
        unit: str = "it",
        initial: float = 0,
        file: IO[str] | None = None,
        quiet: bool = False,
        tty: bool | None = None,
        every_pct: float = EVERY_PCT,
        every_s: float = EVERY_S,
    ) -> None:
        self.file = file if file is not None else sys.stderr
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self.initial = initial
        self.quiet = quiet
        self.tty = _is_tty(self.file) if tty is None else tty
        self.every_pct, self.every_s = every_pct, every_s
        self.postfix = ""
        self.closed = False
        self._t0 = time.perf_counter()
        self._last_t = self._t0
        self._last_pct = -math.inf
        self._bar: Any = None
        if not quiet and self.tty:
            from tqdm import tqdm

            # smoothing=0: the rate (and ETA) is the average since the bar opened
            self._bar = tqdm(
                total=total,
                initial=initial,
                desc=desc,
                unit=unit,
                file=self.file,
                dynamic_ncols=True,
                smoothing=0,
                mininterval=0.2,
            )

    # ------------------------------------------------------------------
    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rate(self) -> float:
        """Units per second since the bar opened."""
        el = time.perf_counter() - self._t0
        return (self.n - self.initial) / el if el > 0 else float("nan")

    def eta(self) -> float:
        """Seconds left at the measured rate (nan while unknown)."""
        r = self.rate()
        if self.total is None or not r or not math.isfinite(r) or r <= 0:
            return float("nan")
        return max(0.0, (self.total - self.n) / r)

    def update(self, n: float, *, phase: str | None = None, postfix: str | None = None) -> None:
        """Move to position ``n`` (absolute)."""
        if self.closed or self.quiet:
            self.n = n
            return
        if postfix is not None:
            self.postfix = postfix
        changed_phase = phase is not None and phase != self.desc
        if phase is not None:
            self.desc = phase
        self.n = n
        if self._bar is not None:
            if self._bar.total != self.total:  # a total learnt on the way
                self._bar.total = self.total
            if changed_phase:
                self._bar.set_description_str(phase, refresh=False)
            if postfix is not None:
                self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(n - self._bar.n)
            return
        now = time.perf_counter()
        pct = 100.0 * n / self.total if self.total else math.nan
        due = (
            changed_phase
            or now - self._last_t >= self.every_s
            or (math.isfinite(pct) and pct - self._last_pct >= self.every_pct)
        )
        if due:
            self._line(now, pct)

    def _line(self, now: float, pct: float) -> None:
        self._last_t, self._last_pct = now, pct if math.isfinite(pct) else self._last_pct
        done = f"{self.n:g}/{self.total:g} {self.unit}" if self.total else f"{self.n:g} {self.unit}"
        parts = [f"{self.desc}: {done}"]
        if math.isfinite(pct):
            parts[0] += f" ({pct:.0f} %)"
        parts.append(f"elapsed {_hms(now - self._t0)}")
        if self.total:
            parts.append(f"ETA {_hms(self.eta())}")
        if self.postfix:
            parts.append(self.postfix)
        self.file.write(", ".join(parts) + "\n")
        self.file.flush()

    def close(self) -> None:
        """End the display: a terminal bar ends its line; a log gets a last line if it moved since."""
        if self.closed:
            return
        self.closed = True
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.close()
            return
        pct = 100.0 * self.n / self.total if self.total else math.nan
        if self.n != self.initial and (not math.isfinite(pct) or pct != self._last_pct):
            self._line(time.perf_counter(), pct)
