"""Buffers that request frames are received into.

A fresh bytearray per request costs a zero fill and page faults for every
megabyte produced, so large frames are received into buffers from a pool
shared by all connections: a buffer goes back when its request is done, so a
busy producer keeps reusing memory while idle connections hold none, and the
pool keeps at most ``max_bytes``. Produce records are views into the frame;
if anyone still holds a view when the request is done, the buffer is left to
them.
"""
from __future__ import annotations

# Frames smaller than this are plain bytearrays: allocating them is cheap.
MIN_POOLED_FRAME = 64 * 1024
POOL_MAX_BYTES = 32 * 1024 * 1024


class FramePool:
    def __init__(self, max_bytes: int = POOL_MAX_BYTES):
        self.max_bytes = max_bytes
        self.free: list[bytearray] = []
        self.free_bytes = 0

    def take(self, size: int) -> memoryview:
        """A writable view of exactly ``size`` bytes for one request frame."""
        if size >= MIN_POOLED_FRAME:
            fitting = [i for i, buf in enumerate(self.free) if len(buf) >= size]
            if fitting:
                buf = self.free.pop(min(fitting, key=lambda i: len(self.free[i])))
                self.free_bytes -= len(buf)
                return memoryview(buf)[:size]
        return memoryview(bytearray(size))[:size]

    def give_back(self, frame: memoryview) -> None:
        """The request ``frame`` was received for is done."""
        buf = frame.obj
        if len(buf) < MIN_POOLED_FRAME or self.free_bytes + len(buf) > self.max_bytes:
            return
        try:
            frame.release()
            buf.append(0)  # a bytearray cannot be resized while a view of it exists
        except BufferError:
            return
        buf.pop()
        self.free.append(buf)
        self.free_bytes += len(buf)
