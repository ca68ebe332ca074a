"""Frame admission: skip camera frames before the board throttles, and rather than run into shutdown.

A hot room leaves three levers: the clocks (the shield's caps, then the firmware's passive trip at
99 C on Orin, both step CPU and GPU down), and the duty. Caps make latency swing with every frame's
proposals; a room where even the lowest clocks at full duty heat the die past the critical trip
(104.5 C) reaches shutdown whatever the clocks. :class:`Admission` works the duty: asked once per
camera frame, before stage 1, it answers admit or skip, so the frames that do run keep their clocks.

**The rule.** It keeps ``gap_s``, the least time between the starts of two admitted frames
(0: no limit, every frame is admitted). The hotter die's reading, looked ``horizon_s`` ahead along
its slope when rising, is compared with a limit ``margin_c`` below the *anchor*: the passive trip
(``anchor="trip"``, the default: 2.5 C below it, half a degree before the shield's caps at trip - 2 C
act, so a hot room sheds frames before its clocks are cut) or the shutdown temperature
(``anchor="shutdown"``, the former rule: 3 C below it, 2.5 C past the trip, once the caps have done
all they can):

- *hot*, above the limit: once per ``down_every_s`` boundary of the admission's clock, ``gap_s``
  grows to ``GROW`` times the larger of itself and the interval between the last two admitted
  frames (so the first step already bites, however slow the frames are), up to ``max_gap_s``;
- *cool*, below the limit minus ``band_c``: once per ``up_every_s`` boundary, ``gap_s`` shrinks by
  ``GROW``; under ``min_gap_s`` it is lifted (0);
- in between it holds (the hysteresis band).

A frame is admitted when ``gap_s`` is 0, when ``gap_s`` has passed since the last admitted frame,
and, with the shutdown anchor, whenever the hotter die's *reading* is below the trip point. A room
whose die stays ``margin_c + band_c`` below the anchor never loses a frame. The clock runs on
``dt_s`` (seconds since the previous call, capped at ``max_dt_s``) in integer nanoseconds, like
the shield's, so the rate moves on time, not on calls.

numpy/stdlib only: the daemon imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NOMINAL_SHUTDOWN_GAP_C = 5.5  # shutdown minus passive trip on every shipped board (Orin 104.5 - 99, TX2 101 - 95.5), C
ANCHORS = ("trip", "shutdown")
TRIP_MARGIN_C = 2.5  # trip anchor: engage this far below the trip (96.5 C on Orin; the shield's caps: 97 C), C
SHUTDOWN_MARGIN_C = 3.0  # shutdown anchor: engage this far below shutdown (101.5 C on Orin, caps at work), C
MARGIN_C = {"trip": TRIP_MARGIN_C, "shutdown": SHUTDOWN_MARGIN_C}
BAND_C = 2.0  # release this much lower still (94.5 C on Orin; 99.5 C with the shutdown anchor), C
HORIZON_S = 1.0  # look-ahead along a rising slope, s
DOWN_EVERY_S = 1.0  # one tightening step per second while hot (the firmware's poll period), s
UP_EVERY_S = 3.0  # one loosening step per 3 s once cool (slower: the heatsink holds the heat), s
GROW = 1.25  # factor of one step on the gap between admitted frames
MIN_GAP_S = 1.0 / 60.0  # a shorter gap is lifted: every frame at 30 fps passes it anyway, s
MAX_GAP_S = 4.0  # at least one frame every 4 s is served (0.25 fps), s
MAX_DT_S = 1.0  # longest time between two calls the clock credits, s


@dataclass
class AdmissionState:
    """What :class:`Admission` keeps between calls (one board)."""

    clock_ns: int = 0  # admission clock since reset, ns
    gap_s: float = 0.0  # least time between two admitted frames' starts, s (0: no limit)
    last_admit_ns: int | None = None  # clock at the last admitted frame
    last_interval_s: float = 0.0  # between the last two admitted frames, s
    admitted: int = 0
    skipped: int = 0


class Admission:
    """The admission rule of one board (see module doc); all temperatures in C, times in s."""

    def __init__(
        self,
        anchor: str = "trip",
        margin_c: float | None = None,
        band_c: float = BAND_C,
        horizon_s: float = HORIZON_S,
        down_every_s: float = DOWN_EVERY_S,
        up_every_s: float = UP_EVERY_S,
        grow: float = GROW,
        min_gap_s: float = MIN_GAP_S,
        max_gap_s: float = MAX_GAP_S,
        max_dt_s: float = MAX_DT_S,
    ) -> None:
        if not (down_every_s > 0 and up_every_s > 0 and max_dt_s > 0 and grow > 1.0 and 0 < min_gap_s <= max_gap_s):
            raise ValueError("admission periods must be positive, grow > 1 and 0 < min_gap_s <= max_gap_s")
        if anchor not in ANCHORS:
            raise ValueError(f"admission anchor must be one of {', '.join(ANCHORS)}, not {anchor!r}")
        self.anchor = anchor
        self.margin_c = MARGIN_C[anchor] if margin_c is None else margin_c
        self.band_c, self.horizon_s = band_c, horizon_s
        self._shutdown_anchor = anchor == "shutdown"  # the former rule: near shutdown, never below the trip
        self.grow, self.min_gap_s, self.max_gap_s, self.max_dt_s = grow, min_gap_s, max_gap_s, max_dt_s
        self._down_ns, self._up_ns = max(round(down_every_s * 1e9), 1), max(round(up_every_s * 1e9), 1)
        self.state = AdmissionState()

    def reset(self) -> None:
        """Forget the gap, the clock and the counters."""
        self.state = AdmissionState()

    @property
    def gap_s(self) -> float:
        """Least time between two admitted frames now, s (0: every frame is admitted)."""
        return self.state.gap_s

    @property
    def served_fps_cap(self) -> float | None:
        """The served-rate cap, frames/s (None: no cap)."""
        gap = self.state.gap_s
        return 1.0 / gap if gap > 0.0 else None

    @property
    def skipped(self) -> int:
        """Frames skipped since reset."""
        return self.state.skipped

    def update(self, temp_c: float, slope_c_per_s: float, trip_c: float, shutdown_c: float, dt_s: float) -> bool:
        """Admit (True) or skip (False) the frame about to start.

        :param temp_c: hotter die's reading, C (NaN admits and holds the gap).
        :param slope_c_per_s: its smoothed slope, C/s (NaN counts as 0).
        :param trip_c: passive trip point, C (the shutdown anchor admits every frame below it).
        :param shutdown_c: critical (shutdown) trip, C.
        :param dt_s: seconds since the previous call (clipped to ``[0, max_dt_s]``).
        """
        st = self.state
        dt = dt_s if dt_s > 0.0 else 0.0
        dt = dt if dt < self.max_dt_s else self.max_dt_s
        t0 = st.clock_ns
        t1 = st.clock_ns = t0 + round(dt * 1e9)
        rising = slope_c_per_s if slope_c_per_s > 0.0 else 0.0  # NaN -> 0
        predicted = temp_c + rising * self.horizon_s
        hot_above = (shutdown_c if self._shutdown_anchor else trip_c) - self.margin_c
        gap = st.gap_s
        if predicted > hot_above:
            steps = t1 // self._down_ns - t0 // self._down_ns
            for _ in range(steps):
                gap = min(max(gap, st.last_interval_s, self.min_gap_s) * self.grow, self.max_gap_s)
        elif predicted < hot_above - self.band_c and gap > 0.0:
            steps = t1 // self._up_ns - t0 // self._up_ns
            for _ in range(steps):
                gap /= self.grow
                if gap < self.min_gap_s:
                    gap = 0.0
                    break
        st.gap_s = gap
        last = st.last_admit_ns
        admit = (
            gap == 0.0
            or not temp_c == temp_c  # NaN reading: admit
            or (self._shutdown_anchor and not temp_c >= trip_c)
            or last is None
            or (t1 - last) >= round(gap * 1e9)
        )
        if admit:
            if last is not None:
                st.last_interval_s = (t1 - last) * 1e-9
            st.last_admit_ns = t1
            st.admitted += 1
        else:
            st.skipped += 1
        return admit


class ServedShare:
    """A learned policy's served share of camera frames, spread evenly (``n`` boards).

    Asked once per camera frame with the share ``s`` in ``[0.5, 1]`` the policy holds now: each
    frame adds ``s`` to a credit, a frame is served when the credit reaches 1 (which it then pays),
    else skipped. ``s = 2/3`` serves two frames of three; with ``s >= 1/2`` the frame after a
    skipped one is always served, so skips never come two in a row.
    """

    def __init__(self, n: int = 1) -> None:
        self.credit = np.zeros(n)

    def reset(self, mask: np.ndarray | bool = True) -> None:
        """Forget the credit of the boards in ``mask`` (their episodes restarted)."""
        self.credit[np.asarray(mask, dtype=bool)] = 0.0

    def skip(self, at_frame: np.ndarray, share: np.ndarray) -> np.ndarray:
        """Which of the boards at a camera frame (``bool [n]``) skip it, at shares ``[n]``.

        A skipping board's next frame is served: its credit is advanced for it here too, so a
        caller that runs that frame without asking again stays in step with one that asks.
        """
        credit = self.credit + np.where(at_frame, share, 0.0)
        serve = credit >= 1.0 - _EPS
        skip = at_frame & ~serve
        credit = np.where(at_frame & serve, credit - 1.0, credit)
        self.credit = np.where(skip, credit + share - 1.0, credit)
        return skip

    def admit(self, share: float) -> bool:
        """Board 0 at a camera frame: serve it (True) or skip it, at share ``share``."""
        credit = float(self.credit[0]) + share
        if credit >= 1.0 - _EPS:
            self.credit[0] = credit - 1.0
            return True
        self.credit[0] = credit
        return False


_EPS = 1e-9
