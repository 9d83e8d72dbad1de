"""The auto-scaler: moves concurrency between a min and a max and says why, every time."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from engine.worker.snapshot import ScalerDecision


@dataclass(frozen=True, slots=True)
class ScalerSettings:
    """Bounds, target and hysteresis of the auto-scaler."""

    min_concurrency: int = 5
    max_concurrency: int = 30
    wait_p95_target_s: float = 1.0
    up_cooldown_s: float = 1.0
    down_after_idle_s: float = 10.0
    busy_high: float = 0.9
    busy_low: float = 0.5
    backlog_per_slot: int = 100
    #: Little's law sizing: slots = arrivals/s x service time x headroom, plus what clears the
    #: backlog within `backlog_clear_s`. Headroom keeps slots ~80 % busy: a queue at 100 %
    #: utilisation grows without bound.
    headroom: float = 1.25
    backlog_clear_s: float = 0.5

    def __post_init__(self) -> None:
        if not 1 <= self.min_concurrency <= self.max_concurrency:
            raise ValueError("need 1 <= min_concurrency <= max_concurrency")


@dataclass(frozen=True, slots=True)
class ScalerInputs:
    """What the scaler looks at on each tick."""

    backlog: int
    wait_p95_s: float | None
    busy_ratio: float
    #: Tasks arriving per second (fetched plus backlog growth), when the caller measured it.
    arrival_per_s: float | None = None
    #: Mean handler time in seconds, when known.
    service_s: float | None = None


class AutoScaler:
    """Decides the concurrency from the measured load, with hysteresis.

    Scale up fast: when the caller gives the arrival rate and service time, straight to what
    Little's law says the load needs (`slots_needed`); otherwise, with a backlog and either
    waits above target or slots saturated, by at most doubling. Scale down slowly: only after
    `down_after_idle_s` of no backlog and few busy slots.
    """

    def __init__(
        self,
        settings: ScalerSettings,
        *,
        initial: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        history: int = 50,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self.concurrency = initial if initial is not None else settings.min_concurrency
        self.pinned = False
        self.decisions: deque[ScalerDecision] = deque(maxlen=history)
        self._last_change_s = -math.inf
        self._idle_since_s: float | None = None

    def _record(self, new: int, reason: str, inputs: ScalerInputs) -> ScalerDecision:
        decision = ScalerDecision(
            at_s=time.time(),
            old=self.concurrency,
            new=new,
            reason=reason,
            backlog=inputs.backlog,
            wait_p95_s=inputs.wait_p95_s,
            busy_ratio=inputs.busy_ratio,
        )
        self.decisions.append(decision)
        self.concurrency = new
        self._last_change_s = self._clock()
        return decision

    def pin(self, concurrency: int) -> ScalerDecision:
        """Fix the concurrency; no automatic change until `unpin`."""
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.pinned = True
        return self._record(
            concurrency, f"pinned at {concurrency} by operator", ScalerInputs(0, None, 0.0)
        )

    def unpin(self) -> ScalerDecision:
        """Return to automatic scaling (clamped into the bounds)."""
        self.pinned = False
        new = min(
            max(self.concurrency, self.settings.min_concurrency), self.settings.max_concurrency
        )
        return self._record(new, "unpinned: automatic scaling", ScalerInputs(0, None, 0.0))

    def set_bounds(self, min_concurrency: int, max_concurrency: int) -> ScalerDecision | None:
        """Change min/max; the concurrency is clamped into the new bounds."""
        s = self.settings
        self.settings = ScalerSettings(
            min_concurrency,
            max_concurrency,
            s.wait_p95_target_s,
            s.up_cooldown_s,
            s.down_after_idle_s,
            s.busy_high,
            s.busy_low,
            s.backlog_per_slot,
            s.headroom,
            s.backlog_clear_s,
        )
        if self.pinned:
            return None
        clamped = min(max(self.concurrency, min_concurrency), max_concurrency)
        if clamped != self.concurrency:
            return self._record(
                clamped,
                f"bounds now {min_concurrency}-{max_concurrency}",
                ScalerInputs(0, None, 0.0),
            )
        return None

    def slots_needed(self, inputs: ScalerInputs) -> int | None:
        """Slots the measured load needs (Little's law), or None when rate or service unknown."""
        if inputs.arrival_per_s is None or inputs.service_s is None:
            return None
        s = self.settings
        per_slot_s = max(inputs.service_s, 0.0)
        steady = inputs.arrival_per_s * per_slot_s * s.headroom
        catch_up = inputs.backlog * per_slot_s / s.backlog_clear_s
        return math.ceil(steady + catch_up)

    def tick(self, inputs: ScalerInputs) -> ScalerDecision | None:
        """Look at the inputs; change the concurrency if warranted and return the decision."""
        if self.pinned:
            return None
        s = self.settings
        now = self._clock()
        cur = self.concurrency
        slow = inputs.wait_p95_s is not None and inputs.wait_p95_s > s.wait_p95_target_s
        saturated = inputs.busy_ratio >= s.busy_high
        needed = self.slots_needed(inputs)
        if needed is not None and inputs.backlog > 0 and needed > cur < s.max_concurrency:
            # Little's law: size for the load now, in one step, instead of doubling once a
            # cooldown while a backlog builds (figures: docs/architecture.md, "Auto-scaler").
            self._idle_since_s = None
            if now - self._last_change_s < s.up_cooldown_s:
                return None
            new = min(needed, s.max_concurrency)
            rate, service = inputs.arrival_per_s or 0.0, inputs.service_s or 0.0
            return self._record(
                new,
                f"+{new - cur}: backlog {inputs.backlog}, need {needed} slots"
                f" ({rate:.0f}/s x {service * 1000:.1f} ms"
                f" x {s.headroom:g} + backlog cleared in {s.backlog_clear_s:g} s)",
                inputs,
            )
        # Without a rate, or when waits stay slow although the sizing says enough (its service
        # time may lag a change of handler), grow by at most doubling. Not on saturation alone
        # once sized: slots ~80 % busy briefly read 100 % and would creep up to the maximum.
        pressed = slow or (needed is None and saturated)
        if inputs.backlog > 0 and pressed and cur < s.max_concurrency:
            self._idle_since_s = None
            if now - self._last_change_s < s.up_cooldown_s:
                return None
            want = math.ceil(inputs.backlog / s.backlog_per_slot)
            step = max(1, min(cur, want, s.max_concurrency - cur))
            why = []
            why.append(f"backlog {inputs.backlog}")
            if slow:
                why.append(f"wait p95 {inputs.wait_p95_s:.1f} s > {s.wait_p95_target_s:g} s target")
            if saturated:
                why.append(f"{inputs.busy_ratio:.0%} of slots busy")
            return self._record(cur + step, f"+{step}: " + ", ".join(why), inputs)
        if inputs.backlog == 0 and inputs.busy_ratio <= s.busy_low and cur > s.min_concurrency:
            if self._idle_since_s is None:
                self._idle_since_s = now
                return None
            idle_for = now - self._idle_since_s
            if idle_for < s.down_after_idle_s:
                return None
            step = max(1, min(cur - s.min_concurrency, math.ceil(cur / 4)))
            self._idle_since_s = now  # keep stepping down one cooldown at a time
            return self._record(
                cur - step,
                f"-{step}: idle {idle_for:.0f} s "
                f"(no backlog, {inputs.busy_ratio:.0%} of slots busy)",
                inputs,
            )
        if inputs.backlog > 0 or inputs.busy_ratio > s.busy_low:
            # Not idle: the idle period (before scaling down) starts over.
            self._idle_since_s = None
        return None
