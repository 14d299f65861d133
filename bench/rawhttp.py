"""A lean HTTP/1.1 keep-alive client for load generators (asyncio streams, no pooling logic).

The benchmarks run the load generator on the same 2-core machine as the server and PostgreSQL;
httpx costs ~2 ms of CPU per request, which the server then lacks. One ``RawConnection`` is one
keep-alive TCP connection used by one worker at a time; requests are written as plain HTTP/1.1
and responses read by ``Content-Length`` (what uvicorn sends for every JSON response).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    status_code: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


class RawConnection:
    def __init__(self, base: str, headers: dict[str, str] | None = None) -> None:
        url = urlsplit(base)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 80
        self.fixed = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self.reader, self.writer

    async def request(
        self, method: str, path: str, *, json_body: Any = None, headers: dict[str, str] | None = None
    ) -> RawResponse:
        body = b"" if json_body is None else json.dumps(json_body, ensure_ascii=False).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.fixed}"
            + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
            + ("Content-Type: application/json\r\n" if json_body is not None else "")
            + f"Content-Length: {len(body)}\r\n\r\n"
        )
        reader, writer = await self._connect()
        writer.write(head.encode("latin-1") + body)
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        out: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                out[name.strip().lower()] = value.strip()
        content = await reader.readexactly(int(out.get("content-length", "0")))
        if out.get("connection", "").lower() == "close":
            await self.close()
        return RawResponse(status, out, content)

    async def post(
        self,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,  # noqa: A002
    ) -> RawResponse:
        return await self.request("POST", path, json_body=json, headers=headers)

    async def get(self, path: str, *, headers: dict[str, str] | None = None) -> RawResponse:
        return await self.request("GET", path, headers=headers)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        self.reader = self.writer = None
