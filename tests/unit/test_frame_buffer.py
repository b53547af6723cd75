"""A connection receives its request frames into one reused buffer."""
from kafka_compat.server.connection import KEEP_FRAME_BUFFER_MAX, FrameBuffer


def test_the_buffer_is_reused_once_a_request_is_done():
    frames = FrameBuffer()
    first = frames.frame(1000)
    first[:3] = b"abc"
    buf = frames.buf
    frames.done(first)
    second = frames.frame(600)
    assert frames.buf is buf
    assert len(second) == 600 and bytes(second[:3]) == b"abc"
    frames.done(second)
    assert len(frames.frame(2000)) == 2000  # grows when a frame is larger
    assert frames.buf is not buf


def test_a_frame_someone_still_views_is_left_to_them():
    frames = FrameBuffer()
    frame = frames.frame(100)
    frame[:5] = b"hello"
    records = frame[:5]  # a handler kept a view past its request
    buf = frames.buf
    frames.done(frame)
    assert frames.buf is not buf
    frames.frame(100)[:5] = b"XXXXX"
    assert bytes(records) == b"hello"


def test_a_huge_buffer_is_not_kept():
    frames = FrameBuffer()
    frames.done(frames.frame(KEEP_FRAME_BUFFER_MAX + 1))
    assert len(frames.buf) == 0
