"""Decompression is bounded: bombs fail fast with MESSAGE_TOO_LARGE and cost
no more memory than the limit, in a fresh process whose peak RSS we can see."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kafka_compat.protocol.compression import MAX_DECOMPRESSED_BYTES, Codec, compress, decompress
from kafka_compat.protocol.errors import ErrorCode, KafkaError

from .bombs import bomb, snappy_liar


@pytest.mark.parametrize("codec", [Codec.GZIP, Codec.LZ4, Codec.ZSTD])
def test_bomb_over_limit_is_message_too_large(codec):
    with pytest.raises(KafkaError) as e:
        decompress(codec, bomb(codec, 4), limit=1 << 20)
    assert e.value.code == ErrorCode.MESSAGE_TOO_LARGE


@pytest.mark.parametrize("codec", [Codec.GZIP, Codec.SNAPPY, Codec.LZ4, Codec.ZSTD])
def test_exactly_the_limit_decompresses(codec):
    data = bytes(range(256)) * 4096
    assert decompress(codec, compress(codec, data), limit=len(data)) == data
    with pytest.raises(KafkaError) as e:
        decompress(codec, compress(codec, data), limit=len(data) - 1)
    assert e.value.code == ErrorCode.MESSAGE_TOO_LARGE


def test_snappy_block_claiming_gigabytes_is_refused_before_decoding():
    with pytest.raises(KafkaError) as e:
        decompress(Codec.SNAPPY, snappy_liar())
    assert e.value.code == ErrorCode.MESSAGE_TOO_LARGE
    # Within the limit, the lie is caught by the decoder.
    with pytest.raises(KafkaError) as e:
        decompress(Codec.SNAPPY, snappy_liar(1000))
    assert e.value.code == ErrorCode.UNKNOWN_SERVER_ERROR


_CHILD = """
import json, resource, sys
from kafka_compat.protocol.compression import Codec, decompress
from kafka_compat.protocol.errors import KafkaError
from tests.fuzz.bombs import bomb
codec, mib = int(sys.argv[1]), int(sys.argv[2])
data = bomb(codec, mib)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    decompress(codec, data)
    code = 0
except KafkaError as e:
    code = int(e.code)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"size": len(data), "code": code, "grew_kib": after - before}))
"""


@pytest.mark.parametrize("codec,mib", [(Codec.GZIP, 1024), (Codec.LZ4, 1024), (Codec.ZSTD, 8192)])
def test_gigabyte_bombs_cost_at_most_the_limit(codec, mib):
    out = subprocess.run([sys.executable, "-c", _CHILD, str(int(codec)), str(mib)],
                         capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout)
    assert result["code"] == ErrorCode.MESSAGE_TOO_LARGE
    assert result["size"] < 5 << 20  # a small request...
    # ...that would have been `mib` MiB: the peak grew by the limit at most.
    assert result["grew_kib"] * 1024 < MAX_DECOMPRESSED_BYTES + (8 << 20), result
