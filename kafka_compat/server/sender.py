"""Writing a response's chunks: bytes coalesced into one send, file regions
with os.sendfile straight from the segment file (zero copy), unless they are
small: then the whole response goes out in one send."""
from __future__ import annotations

import os

import trio

from ..protocol.primitives import FileRegion
from .socket_io import Socket

# A response whose file regions hold at most this many bytes goes out in one
# send, the regions read from the page cache: cheaper than a sendfile and the
# sends around it, and the peer receives one segment instead of three (a
# follower's fetch of the last few appends, a consumer keeping up).
SMALL_REGIONS = 65536


async def _sendfile(sock: Socket, region: FileRegion) -> None:
    offset, remaining = region.offset, region.length
    while remaining:
        try:
            sent = os.sendfile(sock.fd, region.fd, offset, remaining)
        except BlockingIOError:
            await sock.wait_writable()
            continue
        if sent == 0:
            raise trio.BrokenResourceError("file region shorter than announced")
        offset += sent
        remaining -= sent


def _read(region: FileRegion) -> bytes:
    data = os.pread(region.fd, region.length, region.offset)
    if len(data) != region.length:
        raise trio.BrokenResourceError("file region shorter than announced")
    return data


async def send_chunks(sock: Socket, chunks: list) -> None:
    if len(chunks) == 1 and not isinstance(chunks[0], FileRegion):
        await sock.send_all(chunks[0])
        return
    if sum(c.length for c in chunks if isinstance(c, FileRegion)) <= SMALL_REGIONS:
        await sock.send_all(b"".join(_read(c) if isinstance(c, FileRegion) else c for c in chunks))
        return
    pending: list = []
    for chunk in chunks:
        if isinstance(chunk, FileRegion):
            if pending:
                await sock.send_all(b"".join(pending))
                pending = []
            await _sendfile(sock, chunk)
        else:
            pending.append(chunk)
    if pending:
        await sock.send_all(b"".join(pending) if len(pending) > 1 else pending[0])
