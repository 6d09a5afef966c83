"""The simulator's answers that are not JSON data: errors, result files and cut connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send

# Result files go out in pieces this big: each piece costs a trip to a worker thread, and a
# report is hundreds of megabytes.
_CHUNK_BYTES = 1 << 20


@dataclass
class ServedFile:
    path: Path
    report: str
    task_id: int
    media_type: str


def errors(status: int, code: int, field: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse({"errors": [{"code": code, "field": field, "message": message}]}, status, headers)


def unauthorized() -> Response:
    return errors(401, 401, "authorization", "Unauthorized", {"WWW-Authenticate": "Bearer"})


class ResultFile(FileResponse):
    chunk_size = _CHUNK_BYTES


async def file_chunks(path: Path, limit: int) -> AsyncIterator[bytes]:
    """The first `limit` bytes of a file, in chunks."""
    remaining = limit
    async with await anyio.open_file(path, "rb") as file:
        while remaining > 0:
            chunk = await file.read(min(_CHUNK_BYTES, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


class CutConnection(Response):
    """Closes the connection without an answer, or (given a file) after half of the file's body."""

    def __init__(self, served: ServedFile | None) -> None:
        super().__init__()
        self._served = served

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._served is not None:
            size = self._served.path.stat().st_size
            headers = [(b"content-type", self._served.media_type.encode()), (b"content-length", str(size).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            async for chunk in file_chunks(self._served.path, size // 2):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        _transport(receive).close()
        # Returning before the server has seen the connection go would make it log an incomplete answer.
        while (await receive())["type"] != "http.disconnect":
            pass


def _transport(receive: Receive) -> asyncio.BaseTransport:
    # ASGI has no message that drops a connection. Uvicorn's `receive` is a method of the request
    # cycle, which holds the connection's transport (an asyncio or a uvloop one).
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if not callable(getattr(transport, "close", None)):
        raise RuntimeError("dropping a connection needs the simulator to run under uvicorn")
    return transport  # type: ignore[return-value]
