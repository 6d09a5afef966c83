"""Report rows as histories of versions, derived on demand from each row's own random draws.

Every table row (an attempt, a learner on a material, course or programme) is a history of
versions written at increasing moments of the period, each with a hidden `modified_at`. A company
keeps only its entities and who is assigned to what; a group's rows are drawn when a selection
reaches them, so a selection streams and a company of any size fits in memory.
"""

from __future__ import annotations

import bisect
import functools
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from ekvio_assets.reports.specs import ReportSpec
from ekvio_assets.simulator.company import DatasetConfig, Period
from ekvio_assets.simulator.draws import RowRandom
from ekvio_assets.simulator.entities import Course, Learner, Material, Program


class Version(NamedTuple):
    """One state of a row, written at `modified_at`; the payload shows only the change-time field."""

    modified_at: datetime
    values: dict[str, Any]


def _modified_at(version: Version) -> datetime:
    return version.modified_at


class Row(NamedTuple):
    """A table row through time: its versions, oldest first; `drift` decides how every version renders."""

    drift: int
    versions: list[Version]

    def visible(self, as_of: datetime | None) -> Version | None:
        """The latest version written before `as_of` (None: the final one); None before the first."""
        if as_of is None:
            return self.versions[-1]
        written_before = bisect.bisect_left(self.versions, as_of, key=_modified_at)
        return self.versions[written_before - 1] if written_before else None


class Parent(NamedTuple):
    """The payload object a nested report's rows sit in (a material, a programme); it never changes."""

    values: dict[str, Any]
    drift: int


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _microseconds(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


class WrittenMoments(NamedTuple):
    """When a group's rows were written: every version's moment (microseconds since the epoch),
    sorted, beside the index in the group's learners of the learner whose row it is."""

    moments: array[int]
    learner_indexes: array[int]

    def learners_writing(self, after: datetime | None, to: datetime | None) -> list[int]:
        """The indexes of the learners with a version written in [after, to), in order."""
        start = 0 if after is None else bisect.bisect_left(self.moments, _microseconds(after))
        end = len(self.moments) if to is None else bisect.bisect_left(self.moments, _microseconds(to))
        return sorted(set(self.learner_indexes[start:end]))

    def any_written_before(self, as_of: datetime) -> bool:
        """Whether any row of the group is visible at `as_of`."""
        return bool(self.moments) and self.moments[0] < _microseconds(as_of)


@dataclass(frozen=True)
class RowGroup:
    """Rows sent together: a nested report's rows under their parent, or a flat report's rows of one
    material or course. `rows()` draws them anew on every call, identically."""

    parent: Parent | None
    # The positions in `Company.learners` of the learners assigned, drawn once when first asked.
    assign: Callable[[], array[int]]
    draw: Callable[[array[int]], Iterator[Row]]
    one_row_per_learner: bool = True  # False: a learner may have no rows or several (attempts)

    @property
    def learners(self) -> array[int]:
        return self.assign()

    def rows(self) -> Iterator[Row]:
        return self.draw(self.assign())

    def rows_written(self, after: datetime | None, to: datetime | None) -> Iterator[Row]:
        """The rows of the learners who wrote a version in [after, to): a superset of the rows a
        window selects, drawn without drawing the rest of the group."""
        if after is None and to is None:
            return self.rows()
        learners = self.learners
        indexes = self.written_moments.learners_writing(after, to)
        return self.draw(array("I", (learners[index] for index in indexes)))

    # Drawn once, on the group's first selection of a window: a window's selection then draws only
    # the rows written in it, so a day-by-day refresh does not draw the whole report for every day.
    @functools.cached_property
    def written_moments(self) -> WrittenMoments:
        written = sorted(
            (_microseconds(version.modified_at), index)
            for index, position in enumerate(self.learners)
            for row in self.draw(array("I", (position,)))
            for version in row.versions
        )
        moments = array("q", (moment for moment, _ in written))
        return WrittenMoments(moments, array("I", (index for _, index in written)))

    def row_count(self) -> int:
        return len(self.learners) if self.one_row_per_learner else sum(1 for _ in self.rows())

    def any_visible(self, as_of: datetime | None) -> bool:
        """Whether any row of the group is visible at `as_of`; the final state needs no index."""
        if as_of is None:
            return self.row_count() > 0
        return self.written_moments.any_written_before(as_of)


@dataclass(frozen=True)
class Company:
    """What a generated company keeps in memory: its entities, from which every row is drawn."""

    config: DatasetConfig
    period: Period
    learners: tuple[Learner, ...]
    materials: tuple[Material, ...]
    courses: tuple[Course, ...]
    programs: tuple[Program, ...]

    def row_random(self, report: str, parent_key: tuple[Any, ...], learner: Learner) -> RowRandom:
        return RowRandom(self.config.seed, report, *parent_key, learner.user_id)

    def learner_group(
        self,
        report: str,
        parent_key: tuple[Any, ...],
        share: tuple[float, float] | None,
        versions: Callable[[RowRandom, Learner], list[Version]],
        parent_values: dict[str, Any] | None = None,
    ) -> RowGroup:
        """The rows of the learners assigned to a parent (sent under it, given `parent_values`), one
        a learner: each draws its drift, then its versions."""
        parent = None if parent_values is None else self.parent(report, parent_key, parent_values)
        rows = functools.partial(self._learner_rows, report, parent_key, versions)
        return RowGroup(parent, self.assignment(report, parent_key, share), rows)

    def _learner_rows(
        self,
        report: str,
        parent_key: tuple[Any, ...],
        versions: Callable[[RowRandom, Learner], list[Version]],
        learners: array[int],
    ) -> Iterator[Row]:
        for position in learners:
            learner = self.learners[position]
            rng = self.row_random(report, parent_key, learner)
            drift = rng.getrandbits(64)
            yield Row(drift, versions(rng, learner))

    def parent(self, report: str, parent_key: tuple[Any, ...], values: dict[str, Any]) -> Parent:
        return Parent(values, RowRandom(self.config.seed, report, "parent", *parent_key).getrandbits(64))

    def assignment(
        self, report: str, parent_key: tuple[Any, ...], share: tuple[float, float] | None
    ) -> Callable[[], array[int]]:
        """The learners assigned to a parent, drawn when first asked: a share of them drawn from
        `share` (None: nobody yet), in the order of `learners`."""

        @functools.cache
        def assigned() -> array[int]:
            if share is None:
                return array("I")
            rng = RowRandom(self.config.seed, report, "assigned", *parent_key)
            count = round(rng.uniform(*share) * len(self.learners))
            return array("I", sorted(rng.sample(len(self.learners), count)))

        return assigned


def check_history(spec: ReportSpec, row_columns: set[str], row: Row, period: Period) -> None:
    """Fail loudly when specs.py and the generator disagree about a report, or a history is inconsistent.

    Every version must have the report's columns and key, be written inside the period after the
    previous one, and carry its `modified_at` as the change time unless that is null.
    """
    moments = [version.modified_at for version in row.versions]
    if moments != sorted(set(moments)) or not period.start <= moments[0] <= moments[-1] < period.end:
        raise AssertionError(f"{spec.name}: versions written at {moments} are out of order or of the period")
    key_columns = [column for column in spec.key if column in row_columns]
    key = [row.versions[0].values[column] for column in key_columns]
    for version in row.versions:
        values = version.values
        if values.keys() != row_columns:
            raise AssertionError(f"{spec.name}: row columns {sorted(values)} != {sorted(row_columns)}")
        if [values[column] for column in key_columns] != key:
            raise AssertionError(f"{spec.name}: a version changes the key of its row")
        if spec.change_time is not None and values[spec.change_time] not in (None, version.modified_at):
            raise AssertionError(f"{spec.name}: change time {values[spec.change_time]} != {version.modified_at}")
