"""The Ekvio simulator: synthetic, consistent company data served over the real report protocol.

It is the product's peer when no API URL is configured, and the peer of every end-to-end test.
"""

from ekvio_assets.simulator.company import DatasetConfig
from ekvio_assets.simulator.dataset import Dataset, RecordFilter, RowVersion
from ekvio_assets.simulator.faults import (
    KINDS_BY_CALL,
    TRANSIENT_KINDS,
    Call,
    FaultKind,
    FaultPlan,
    FaultRule,
    parse_fault_rules,
)
from ekvio_assets.simulator.generator import generate
from ekvio_assets.simulator.protocol import CannedAnswer, ProtocolOptions
from ekvio_assets.simulator.routes import NOT_HTTP_FILE_URL, TRAVERSAL_FILE_NAME
from ekvio_assets.simulator.server import RunningSimulator, create_app, running_simulator
from ekvio_assets.simulator.server_state import CreatedTask, FileRequest, InjectedFault, SimulatorClock, SimulatorState

__all__ = [
    "KINDS_BY_CALL",
    "NOT_HTTP_FILE_URL",
    "TRANSIENT_KINDS",
    "TRAVERSAL_FILE_NAME",
    "Call",
    "CannedAnswer",
    "CreatedTask",
    "Dataset",
    "DatasetConfig",
    "FaultKind",
    "FaultPlan",
    "FaultRule",
    "FileRequest",
    "InjectedFault",
    "ProtocolOptions",
    "RecordFilter",
    "RowVersion",
    "RunningSimulator",
    "SimulatorClock",
    "SimulatorState",
    "create_app",
    "generate",
    "parse_fault_rules",
    "running_simulator",
]
