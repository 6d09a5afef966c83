"""`ekvio-assets bench`: the ingest path against DuckDB's own reader and a naive load, at company scale.

`main(argv)` generates company-scale report files with the simulator's generator (`company`), serves them
from the simulator on loopback, and measures each workload (`workloads`) in a fresh process: its
time and its peak RSS.
"""

from ekvio_assets.benchmark.cli import main

__all__ = ["main"]
