"""Writing a response's chunks: bytes coalesced into one send, file regions
with os.sendfile straight from the segment file (zero copy)."""
from __future__ import annotations

import os

import trio

from ..protocol.primitives import FileRegion


async def _sendfile(stream: trio.SocketStream, region: FileRegion) -> None:
    sock = stream.socket
    offset, remaining = region.offset, region.length
    while remaining:
        try:
            sent = os.sendfile(sock.fileno(), region.fd, offset, remaining)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)
            continue
        if sent == 0:
            raise trio.BrokenResourceError("file region shorter than announced")
        offset += sent
        remaining -= sent
    await trio.lowlevel.checkpoint()


async def send_chunks(stream: trio.SocketStream, chunks: list) -> None:
    pending: list = []
    for chunk in chunks:
        if isinstance(chunk, FileRegion):
            if pending:
                await stream.send_all(b"".join(pending))
                pending = []
            await _sendfile(stream, chunk)
        else:
            pending.append(chunk)
    if pending:
        await stream.send_all(b"".join(pending) if len(pending) > 1 else pending[0])
