"""The size and period of a generated company, and the moments its rows change at."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class DatasetConfig:
    """The size and period of a generated company; change times fall in [start, start + days)."""

    seed: int = 7
    learners: int = 200
    materials: int = 40
    courses: int = 12
    programs: int = 6
    start: date = date(2024, 1, 1)
    days: int = 60
    timezone: str = "Europe/Moscow"

    def __post_init__(self) -> None:
        for name in ("learners", "materials", "courses", "programs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.days < 1:
            raise ValueError("days must be at least 1")
        ZoneInfo(self.timezone)  # fail on an unknown zone here, not in the middle of a render


def local_midnight(config: DatasetConfig, day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(config.timezone))


def period_bounds(config: DatasetConfig) -> tuple[datetime, datetime]:
    """The period rows change in: local midnight of `start` to local midnight `days` later, as UTC instants."""
    end_day = config.start + timedelta(days=config.days)
    return local_midnight(config, config.start).astimezone(UTC), local_midnight(config, end_day).astimezone(UTC)


class Draws(Protocol):
    """The random draws a period needs: `random.Random` and `RowRandom` both make them."""

    def randrange(self, stop: int, /) -> int: ...

    def randint(self, low: int, high: int, /) -> int: ...


# How long a learner leaves a record alone between two sessions on it: hours to days, so that most
# records change on several days.
SESSION_GAP_SECONDS = (2 * 3600, 4 * 24 * 3600)


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    @functools.cached_property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())

    def moment(self, rng: Draws) -> datetime:
        """A whole-second instant, uniform over the period."""
        return self.start + timedelta(seconds=rng.randrange(self.seconds))

    def sessions(self, rng: Draws, after: datetime, count: int) -> list[datetime]:
        """Up to `count` moments following `after` at gaps of hours to days: those before the period ends."""
        moments: list[datetime] = []
        moment = after
        for _ in range(count):
            moment = after_a_gap(rng, moment)
            if moment >= self.end:
                break
            moments.append(moment)
        return moments

    @property
    def second_half(self) -> Period:
        return Period(self.start + (self.end - self.start) / 2, self.end)


def after_a_gap(rng: Draws, moment: datetime) -> datetime:
    return moment + timedelta(seconds=rng.randint(*SESSION_GAP_SECONDS))
