"""Ekvio's error answers, `{"errors": [{"code": ..., "field": ..., "message": ...}]}`, wherever they come.

The vendor answers errors with any HTTP status, 200 included, as the answer to a create request, a
poll, or as the content of a result file. Code 1007 is its general "not taken" code; the field says
why: `integration` (another task of the report is running), `company_id` (the module is not
available for the company) or the parameter it could not read.
"""

from __future__ import annotations

from typing import Any

ERROR_1007 = 1007
TASK_RUNNING, MODULE_UNAVAILABLE = ("integration", "company_id")


class EkvioApiError(RuntimeError):
    """A failure of the Ekvio API that retrying will not fix; the message says what to do."""


def ekvio_errors(body: Any) -> list[Any]:
    """The entries of a parsed answer's `errors` member; none for any other answer."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors:
        return []
    return errors if isinstance(errors, list) else [errors]


def has_1007_on(errors: list[Any], field: str) -> bool:
    return any(
        isinstance(error, dict) and str(error.get("code")) == str(ERROR_1007) and error.get("field") == field
        for error in errors
    )


def describe_errors(errors: list[Any]) -> str:
    """Each error's code, field and message, the message quoted as the server wrote it."""
    return "; ".join(_describe(error) for error in errors)


def _describe(error: Any) -> str:
    if not isinstance(error, dict):
        return f"Ekvio error {error!r}"
    field = f" on {error['field']}" if error.get("field") else ""
    message = f': "{error["message"]}"' if error.get("message") else ""
    return f"Ekvio error {error.get('code')}{field}{message}"


def module_unavailable(title: str, report: str, errors: list[Any]) -> EkvioApiError:
    return EkvioApiError(
        f"The {title} report is not available for this company ({describe_errors(errors)}). Ask Ekvio "
        f"to enable the module for the company's API account, or leave the {report} asset out of the job."
    )
