"""server/sender.py: a response's chunks reach the peer whole and in order,
whether its file regions are read into one send (small) or go with sendfile."""
from __future__ import annotations

import os

import pytest
import trio

from kafka_compat.protocol.primitives import FileRegion
from kafka_compat.server.sender import SMALL_REGIONS, send_chunks
from kafka_compat.server.socket_io import Socket

CONTENT = bytes(range(256)) * 1024  # 256 KiB


@pytest.fixture
def segment_fd(tmp_path):
    path = tmp_path / "segment"
    path.write_bytes(CONTENT)
    fd = os.open(path, os.O_RDONLY)
    yield fd
    os.close(fd)


async def send_and_receive(chunks: list) -> bytes:
    left, right = trio.socket.socketpair()
    left_stream, right_stream = trio.SocketStream(left), trio.SocketStream(right)
    received = bytearray()

    async def receive():
        while data := await right_stream.receive_some(65536):
            received.extend(data)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        try:
            await send_chunks(Socket(left), chunks)
        finally:
            await left_stream.aclose()
    await right_stream.aclose()
    return bytes(received)


@pytest.mark.parametrize("length", [100, SMALL_REGIONS - 200, SMALL_REGIONS + 1, len(CONTENT) - 1000])
async def test_bytes_and_regions_arrive_in_order(segment_fd, length):
    chunks = [b"header", FileRegion(segment_fd, 7, 100), b"between", FileRegion(segment_fd, 1000, length), b"end"]
    expected = b"header" + CONTENT[7:107] + b"between" + CONTENT[1000:1000 + length] + b"end"
    assert await send_and_receive(chunks) == expected


@pytest.mark.parametrize("length", [100, SMALL_REGIONS + 1])
async def test_a_region_past_the_end_of_its_file_breaks_the_send(segment_fd, length):
    chunks = [b"header", FileRegion(segment_fd, len(CONTENT) - 50, length), b"end"]
    left, right = trio.socket.socketpair()  # (the peer reads nothing: less than a socket buffer is sent)
    with left, right, pytest.raises(trio.BrokenResourceError, match="shorter than announced"):
        await send_chunks(Socket(left), chunks)
