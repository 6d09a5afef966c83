"""Synthetic Ekvio data: one consistent company, evolving over time, rendered into the four report payloads.

`generate` draws the company's entities (learners, materials, courses, programmes) and who is
assigned to what; every report row is drawn from its own random stream when a selection reaches
it (see `rows`), so the same config always gives the same dataset, at any size.
"""

from __future__ import annotations

import random

from ekvio_assets.reports.specs import ATTEMPTS, COURSE_STATISTICS, MATERIAL_STATISTICS, PROGRAM_STATISTICS
from ekvio_assets.simulator.company import DatasetConfig, Period, period_bounds
from ekvio_assets.simulator.course_rows import course_groups
from ekvio_assets.simulator.dataset import Dataset
from ekvio_assets.simulator.entities import draw_courses, draw_learners, draw_materials, draw_programs
from ekvio_assets.simulator.material_rows import material_groups
from ekvio_assets.simulator.program_rows import program_groups
from ekvio_assets.simulator.rows import Company

_DEFAULT_CONFIG = DatasetConfig()


def generate(config: DatasetConfig = _DEFAULT_CONFIG) -> Dataset:
    """Generate the company of `config`; the same config always gives the same dataset."""
    rng = random.Random(config.seed)
    period = Period(*period_bounds(config))
    company = Company(
        config=config,
        period=period,
        learners=draw_learners(rng, config.learners),
        materials=draw_materials(rng, config.materials),
        courses=draw_courses(rng, config.courses),
        programs=draw_programs(rng, config.programs, period),
    )
    attempts, material_statistics = material_groups(company)
    groups = {
        ATTEMPTS.name: attempts,
        MATERIAL_STATISTICS.name: material_statistics,
        COURSE_STATISTICS.name: course_groups(company),
        PROGRAM_STATISTICS.name: program_groups(company),
    }
    return Dataset(company, groups)
