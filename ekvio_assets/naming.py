"""The names of one company's Dagster definitions, beside those of the other companies of a deployment.

A single-company deployment keeps the plain names (`material_statistics`, `refresh_job`); with a
companies file (EKVIO_COMPANIES) each company's asset keys start with its key (`north/...`) and its
groups, jobs, schedules, sensors, pools and resources with `<key>_`, so that the UI can filter a
company and nothing of one company waits for or writes to another's.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from ekvio_assets.api.resource import EkvioApiResource
from ekvio_assets.storage.warehouse import DuckDBWarehouse

API_RESOURCE = "ekvio_api"
WAREHOUSE_RESOURCE = "warehouse"


@dataclass(frozen=True)
class Namespace:
    company: str | None = None

    def key(self, table: str) -> dg.AssetKey:
        """The asset key of a table (a report's, a model's) of this company."""
        return dg.AssetKey([self.company, table] if self.company else [table])

    def step(self, table: str) -> str:
        """The step (op) that materializes a table: Dagster names an asset's op after its key."""
        return self.key(table).to_python_identifier()

    def table_of_step(self, step: str) -> str:
        """The table whose asset `step` materializes (the inverse of `step`)."""
        return step.removeprefix(f"{self.company}__") if self.company else step

    def name(self, name: str) -> str:
        """A job's, schedule's, sensor's, group's, pool's or resource's name for this company."""
        return f"{self.company}_{name}" if self.company else name

    @property
    def api_resource(self) -> str:
        return self.name(API_RESOURCE)

    @property
    def warehouse_resource(self) -> str:
        return self.name(WAREHOUSE_RESOURCE)

    # An asset asks for its company's resources by key (`required_resource_keys`) and takes them here:
    # a parameter's name would be the same resource key for every company.
    def api(self, context: dg.AssetExecutionContext) -> EkvioApiResource:
        api: EkvioApiResource = getattr(context.resources, self.api_resource)
        return api

    def warehouse(self, context: dg.AssetExecutionContext) -> DuckDBWarehouse:
        warehouse: DuckDBWarehouse = getattr(context.resources, self.warehouse_resource)
        return warehouse


SINGLE_COMPANY = Namespace()
