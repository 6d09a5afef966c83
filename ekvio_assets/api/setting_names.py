"""The names of the EKVIO_* settings that shape the client's requests, for the messages that tell a
user which one to change. The settings themselves are read and validated in `ekvio_assets.config`."""

API_URL = "EKVIO_API_URL"
API_TOKEN = "EKVIO_API_TOKEN"
FILE_HOST = "EKVIO_FILE_HOST"


def report_path_variable(report: str) -> str:
    """EKVIO_<REPORT>_PATH: the report's path, for an installation that serves it elsewhere."""
    return f"EKVIO_{report.upper()}_PATH"


def report_method_variable(report: str) -> str:
    """EKVIO_<REPORT>_METHOD: GET or POST (the attempts report's real method is not public)."""
    return f"EKVIO_{report.upper()}_METHOD"
