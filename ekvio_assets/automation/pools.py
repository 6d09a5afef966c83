"""The definitions' pools, registered on the Dagster instance before the first run of them is queued.

Dagster's run queue enforces a pool's limit only once the pool is in the instance's storage, and it
stores a pool in the pass that first dequeues a run of it: in that pass every queued run of the new
pool starts at once (measured: a company's backfill, sensor and schedule runs all started together on
a new Postgres instance). Registering each pool ahead, at the instance's default limit as the queue
itself would, closes that gap; a pool already stored keeps the limit it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg


class PoolsError(Exception):
    """The instance cannot hold the pools' limits."""


@dataclass(frozen=True)
class RegisteredPool:
    name: str
    limit: int
    new: bool


def definition_pools(definitions: dg.Definitions) -> list[str]:
    """Every pool an asset of the definitions runs in."""
    graph = definitions.resolve_asset_graph()
    return sorted({assets.op.pool for assets in graph.assets_defs if assets.is_executable and assets.op.pool})


def register_pools(instance: dg.DagsterInstance, pools: Sequence[str]) -> list[RegisteredPool]:
    """Stores each pool not yet stored at the instance's default limit; returns every pool's limit."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        raise PoolsError(f"the Dagster instance's event log storage ({type(storage).__name__}) keeps no pool limits")
    if instance.global_op_concurrency_default_limit is None:
        raise PoolsError(
            "the Dagster instance's dagster.yaml sets no concurrency.pools.default_limit, "
            "so its run queue would limit none of the pools: use the project's dagster.yaml"
        )
    stored = {limit.name for limit in storage.get_pool_limits()}
    for pool in pools:
        if pool not in stored:
            storage.initialize_concurrency_limit_to_default(pool)
    limits = {limit.name: limit.limit for limit in storage.get_pool_limits()}
    return [RegisteredPool(pool, limits[pool], pool not in stored) for pool in pools]
