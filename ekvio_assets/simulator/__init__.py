"""The Ekvio simulator: synthetic, consistent company data served over the real report protocol.

It is the product's peer when no API URL is configured, and the peer of every end-to-end test.
"""

from ekvio_assets.simulator.faults import FaultKind, FaultPlan, FaultRule
from ekvio_assets.simulator.generator import Dataset, DatasetConfig, RecordFilter, RowVersion, generate
from ekvio_assets.simulator.server import (
    CreatedTask,
    RunningSimulator,
    SimulatorClock,
    SimulatorState,
    create_app,
    running_simulator,
)

__all__ = [
    "CreatedTask",
    "Dataset",
    "DatasetConfig",
    "FaultKind",
    "FaultPlan",
    "FaultRule",
    "RecordFilter",
    "RowVersion",
    "RunningSimulator",
    "SimulatorClock",
    "SimulatorState",
    "create_app",
    "generate",
    "running_simulator",
]
