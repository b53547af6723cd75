"""Request frames for fuzzing the broker, generated from protocol_specs/ with
hypothesis: a valid request of some API and version (strategies per field
type, nullability, tagged fields, record batches), then maybe one mutation.

A request is built as a flat list of tokens (a length prefix, an array count,
a fixed-size int, payload bytes...) so that mutations can aim at one field:
a length or count that lies, a varint too long or unterminated, a null where
none is allowed, an unknown or truncated tagged field, a token dropped or
repeated, bytes flipped, the frame cut short. Frame-level mutations (a size
prefix that is negative, too large, or promises bytes that never come) leave
the connection unusable, so such frames are marked ``terminal``.

Strings come mostly from a small vocabulary so that fuzzing a million frames
touches a bounded set of topics and groups; timeouts stay short, since a
request honouring a long one (Fetch's max_wait_ms) is correct, not a hang.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache

from crc32c import crc32c
from hypothesis import strategies as st

from kafka_compat.api.registry import load_handlers
from kafka_compat.protocol import primitives as p
from kafka_compat.protocol import schema
from kafka_compat.protocol.compression import Codec, compress
from kafka_compat.protocol.records import (
    ATTRIBUTES_OFFSET,
    BATCH_LENGTH_OFFSET,
    CRC_OFFSET,
    LAST_OFFSET_DELTA_OFFSET,
    MAGIC_OFFSET,
    PRODUCER_ID_OFFSET,
    RECORD_COUNT_OFFSET,
    RECORDS_OFFSET,
    build_batch,
    encode_varint,
)

from .bombs import bomb

API_VERSIONS_KEY = 18
# Topics the fuzz broker has (see driver.FUZZ_TOPICS); "fuzz-none" does not exist.
TOPICS = ["fuzz-a", "fuzz-compact", "fuzz-gzip", "fuzz-ts", "fuzz-none"]
WORDS = TOPICS + ["g0", "g1", "member-1", "txn-1", "", "__consumer_offsets", "bad name!", "x" * 300]

_INT_RANGES = {
    "int8": (-(1 << 7), (1 << 7) - 1),
    "int16": (-(1 << 15), (1 << 15) - 1),
    "uint16": (0, (1 << 16) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
}


@dataclass
class Tok:
    """One piece of an encoded request. ``kind``: 'fixed' (an int of ``enc``),
    'len' (a string/bytes length), 'count' (an array count), 'tagcount',
    'tag', 'raw' (payload), 'records'. ``enc``: 'int8'..'int64', 'uvarint',
    'float64' or ''. ``value``: the int a fixed/len/count token holds.
    ``name``: the field's name, for fields that mutations must leave alone."""

    kind: str
    data: bytes
    enc: str = ""
    value: int = 0
    name: str = ""


def _int_tok(kind: str, enc: str, value: int, name: str = "") -> Tok:
    if enc == "uvarint":
        return Tok(kind, p.encode_uvarint(value), enc, value, name)
    return Tok(kind, p.FIXED[enc].pack(value), enc, value, name)


def _length(kind: str, n: int, compact: bool, wide: bool) -> Tok:
    """A length or count prefix: n (-1 is null)."""
    if compact:
        return _int_tok(kind, "uvarint", n + 1)
    return _int_tok(kind, "int32" if wide else "int16", n)


def _size(toks: list[Tok]) -> int:
    return sum(len(t.data) for t in toks)


def _flatten(parts) -> list[Tok]:
    return [t for part in parts for t in part]


# ---------------------------------------------------------------- field values


def _small_time(name: str) -> bool:
    return name.endswith("_ms") or "timeout" in name


def ints(typ: str, name: str = "") -> st.SearchStrategy[int]:
    lo, hi = _INT_RANGES[typ]
    if name == "acks":
        return st.sampled_from([-1, 1, 0, 2])
    if _small_time(name):
        return st.integers(0, 100) | st.just(-1)
    edges = [v for v in (0, 1, -1, 2, 3, lo, hi) if lo <= v <= hi]
    return st.sampled_from(edges) | st.integers(lo, hi)


def strings() -> st.SearchStrategy[str]:
    return st.sampled_from(WORDS) | st.text(max_size=12)


@st.composite
def record_batches(draw) -> bytes:
    """A v2 batch as a producer sends it (any codec), then maybe broken: a header
    field changed with the CRC fixed up (so the checks after the CRC run), the
    records themselves malformed inside a correct CRC, the CRC wrong, or a
    compressed body that inflates far beyond any limit."""
    codec = draw(st.sampled_from(list(Codec)))
    n = draw(st.integers(1, 4))
    records = [(draw(st.none() | st.binary(max_size=8)), draw(st.none() | st.binary(max_size=16)),
                draw(st.lists(st.tuples(st.sampled_from(["h", ""]), st.none() | st.binary(max_size=4)), max_size=2)),
                draw(st.sampled_from([1_700_000_000_000, 0, -1])) + i) for i in range(n)]
    idempotent = draw(st.booleans())
    batch = bytearray(build_batch(records, codec=codec, producer_id=7 if idempotent else -1,
                                  producer_epoch=0 if idempotent else -1, base_sequence=0 if idempotent else -1))
    how = draw(st.sampled_from(["valid", "header", "records", "crc", "bomb", "trailing"]))
    if how == "header":
        offset, fmt = draw(st.sampled_from([
            (ATTRIBUTES_OFFSET, ">h"), (LAST_OFFSET_DELTA_OFFSET, ">i"), (RECORD_COUNT_OFFSET, ">i"),
            (BATCH_LENGTH_OFFSET, ">i"), (MAGIC_OFFSET, ">b"), (PRODUCER_ID_OFFSET, ">q"), (0, ">q")]))
        lo, hi = {">b": (-128, 127), ">h": (-(1 << 15), (1 << 15) - 1), ">i": (-(1 << 31), (1 << 31) - 1),
                  ">q": (-(1 << 63), (1 << 63) - 1)}[fmt]
        struct.pack_into(fmt, batch, offset, draw(st.sampled_from([0, 1, -1, lo, hi, 0x20, 0x07, 0x08]) | st.integers(lo, hi)))
        _fix_crc(batch)
    elif how == "records":
        body = draw(_bad_record_bodies())
        data = compress(codec, body) if codec != Codec.NONE else body
        batch = batch[:RECORDS_OFFSET] + data
        struct.pack_into(">i", batch, BATCH_LENGTH_OFFSET, len(batch) - 12)
        struct.pack_into(">i", batch, RECORD_COUNT_OFFSET, draw(st.sampled_from([1, 2, 1 << 30])))
        _fix_crc(batch)
    elif how == "crc":
        i = draw(st.integers(CRC_OFFSET, len(batch) - 1))
        batch[i] ^= draw(st.integers(1, 255))
    elif how == "bomb":
        codec = draw(st.sampled_from([Codec.GZIP, Codec.LZ4, Codec.ZSTD]))
        batch = batch[:RECORDS_OFFSET] + _bomb(codec)
        struct.pack_into(">h", batch, ATTRIBUTES_OFFSET, codec)
        struct.pack_into(">i", batch, BATCH_LENGTH_OFFSET, len(batch) - 12)
        count = draw(st.sampled_from([1, 1000, (1 << 31) - 1]))
        struct.pack_into(">i", batch, RECORD_COUNT_OFFSET, count)
        struct.pack_into(">i", batch, LAST_OFFSET_DELTA_OFFSET, count - 1)
        _fix_crc(batch)
    elif how == "trailing":
        batch += draw(st.binary(min_size=1, max_size=70))
    return bytes(batch)


@lru_cache(maxsize=None)
def _bomb(codec: int) -> bytes:
    """Zeros that inflate to 64 MiB (4x the broker's limit), a small request."""
    return bomb(codec, 64)


@st.composite
def _bad_record_bodies(draw) -> bytes:
    """One or two records' bytes with a lie in them: a length or count varint that
    is huge, negative or longer than 5 bytes (an overflow), or plain garbage."""
    varint = st.sampled_from([encode_varint(v) for v in (-1, -2, 0, 1, 1 << 30, -(1 << 31), (1 << 31) - 1)]
                             + [b"\xff" * 5 + b"\x01", b"\xff" * 10, b"\x80" * 4 + b"\x00"])
    if draw(st.booleans()):
        return draw(st.binary(max_size=40))
    # length, attributes, timestamp delta, offset delta, key, value, header count
    fields = [draw(varint), b"\x00", draw(varint), draw(varint), draw(varint), b"k", draw(varint), b"v", draw(varint)]
    return b"".join(fields) * draw(st.integers(1, 2))


def _fix_crc(batch: bytearray) -> None:
    end = min(len(batch), 12 + max(0, struct.unpack_from(">i", batch, BATCH_LENGTH_OFFSET)[0]))
    struct.pack_into(">I", batch, CRC_OFFSET, crc32c(bytes(batch[ATTRIBUTES_OFFSET:max(end, ATTRIBUTES_OFFSET)])))


# ---------------------------------------------------------------- spec -> token strategies


def _primitive(typ: str, compact: bool, nullable: bool, name: str) -> st.SearchStrategy[list[Tok]]:
    if typ in _INT_RANGES:
        return ints(typ, name).map(lambda v: [_int_tok("fixed", typ, v, name)])
    if typ == "float64":
        return st.floats(allow_nan=True).map(lambda v: [Tok("fixed", struct.pack(">d", v), "float64")])
    if typ == "bool":
        return st.booleans().map(lambda v: [_int_tok("fixed", "int8", int(v))])
    if typ == "uuid":
        return st.sampled_from([bytes(16), b"\x01" * 16]).map(lambda v: [Tok("raw", v)])
    if typ == "string":
        values = strings().map(str.encode)
        wide = False
    elif typ == "bytes":
        values = st.binary(max_size=24)
        wide = True
    elif typ == "records":
        values = record_batches()
        wide = True
    else:
        raise ValueError(typ)
    if nullable:
        values = st.none() | values
    kind = "records" if typ == "records" else "raw"

    def encode(v):
        if v is None:
            return [_length("len", -1, compact, wide)]
        return [_length("len", len(v), compact, wide), Tok(kind, v)]

    return values.map(encode)


def _field(f: schema.FieldSpec, version: int, flexible: bool) -> st.SearchStrategy[list[Tok]]:
    nullable = schema.in_range(version, f.nullable)
    if f.type == "{}":
        return _struct(f.fields, version, flexible, nullable)
    if f.type.startswith("[]"):
        elem = f.type[2:]
        sub = _struct(f.fields, version, flexible) if elem == "" else _primitive(elem, flexible, False, f.name)
        items = st.lists(sub, max_size=3).map(lambda xs: [_length("count", len(xs), flexible, True)] + _flatten(xs))
        if nullable:
            items = st.just([_length("count", -1, flexible, True)]) | items
        return items
    return _primitive(f.type, flexible, nullable, f.name)


def _tagged(tag: int, inner: st.SearchStrategy[list[Tok]]) -> st.SearchStrategy[list[Tok]]:
    return inner.map(lambda toks: [_int_tok("tag", "uvarint", tag), _int_tok("len", "uvarint", _size(toks))] + toks)


def _struct(fields, version: int, flexible: bool, nullable: bool = False) -> st.SearchStrategy[list[Tok]]:
    regular, tagged = [], []
    for f in fields:
        if not schema.in_range(version, f.versions):
            continue
        if schema.in_range(version, f.tagged):
            tagged.append(st.none() | _tagged(f.tag, _field(f, version, True)))
        else:
            regular.append(_field(f, version, flexible))
    parts = st.tuples(*regular)
    if flexible:
        def with_tags(args):
            body, tags = args
            present = [t for t in tags if t is not None]
            return _flatten(body) + [_int_tok("tagcount", "uvarint", len(present))] + _flatten(present)
        out = st.tuples(parts, st.tuples(*tagged)).map(with_tags)
    else:
        out = parts.map(_flatten)
    if nullable:
        out = st.just([_int_tok("fixed", "int8", -1)]) | out.map(lambda toks: [_int_tok("fixed", "int8", 1)] + toks)
    return out


@lru_cache(maxsize=None)
def request_body(name: str, version: int) -> st.SearchStrategy[list[Tok]]:
    spec = schema.all_specs()[name]
    return _struct(spec.bodies["request"], version, schema.in_range(version, spec.flexible))


@lru_cache(maxsize=None)
def served() -> list[tuple[int, str, int]]:
    """(api key, name, version) for every API version the broker serves."""
    return sorted((e.api_key, e.name, v) for e in load_handlers().values()
                  for v in range(e.min_version, e.max_version + 1))


def header(api_key: int, version: int, correlation_id: int, client_id: bytes | None = b"fuzz") -> list[Tok]:
    toks = [_int_tok("fixed", "int16", api_key, "api_key"), _int_tok("fixed", "int16", version, "api_version"),
            _int_tok("fixed", "int32", correlation_id, "correlation_id")]
    toks.append(_length("len", -1 if client_id is None else len(client_id), False, False))
    if client_id is not None:
        toks.append(Tok("raw", client_id))
    entry = load_handlers().get(api_key)
    if entry is not None and schema.is_flexible(api_key, version):
        toks.append(_int_tok("tagcount", "uvarint", 0))
    return toks


# ---------------------------------------------------------------- mutations

_MUTATIONS = ["value", "varint", "drop", "repeat", "flip", "truncate", "unknown_tag", "trailing",
              "api_key", "api_version", "size"]
_KEEP = {"correlation_id"}  # responses are matched to requests by it


def _interesting(tok: Tok) -> st.SearchStrategy[int]:
    if tok.enc == "uvarint":
        return st.sampled_from([0, 1, tok.value + 1, tok.value + 2, (1 << 31) - 1, (1 << 32) - 1, 1 << 28])
    lo, hi = _INT_RANGES.get(tok.enc, (0, 0))
    return st.sampled_from([-1, -2, 0, 1, lo, hi, tok.value + 1, tok.value - 1]).filter(lambda v: lo <= v <= hi)


@dataclass
class Frame:
    """A request frame to send, and what we know of it. The sender numbers
    frames: it writes its correlation id at CORRELATION_AT."""

    api_key: int
    name: str
    version: int
    data: bytes  # size prefix included
    mutation: str
    terminal: bool = False  # the connection cannot be used after it


CORRELATION_AT = 8  # size, api key, api version, then the correlation id


@st.composite
def frame_groups(draw, apis: list[tuple[int, str, int]] | None = None, mutants: int = 8) -> list[Frame]:
    """A valid request of one served API version, and up to ``mutants`` mutations
    of it (drawing the request costs most of the time: each is used many times)."""
    api_key, name, version = draw(st.sampled_from(apis or served()))
    toks = header(api_key, version, 0) + draw(request_body(name, version))
    group = [_frame(api_key, name, version, toks, "none")]
    for mutation in draw(st.lists(st.sampled_from(_MUTATIONS), min_size=mutants // 2, max_size=mutants)):
        group.append(_mutate(draw, api_key, name, version, list(toks), mutation))
    return group


def _frame(api_key, name, version, toks, mutation) -> Frame:
    payload = b"".join(t.data for t in toks)
    return Frame(api_key, name, version, struct.pack(">i", len(payload)) + payload, mutation)


def _mutate(draw, api_key: int, name: str, version: int, toks: list[Tok], mutation: str) -> Frame:
    if mutation in ("value", "varint"):
        targets = [i for i, t in enumerate(toks) if t.enc and t.enc != "float64" and t.name not in _KEEP
                   and not _small_time(t.name) and (mutation == "value" or t.enc == "uvarint")]
        if targets:
            i = draw(st.sampled_from(targets))
            tok = toks[i]
            if mutation == "value":
                toks[i] = _int_tok(tok.kind, tok.enc, draw(_interesting(tok)), tok.name)
            else:  # the same value written non-minimally, or never terminated
                toks[i] = Tok(tok.kind, draw(st.sampled_from([
                    bytes(b | 0x80 for b in tok.data) + b"\x00", b"\xff" * 5 + b"\x0f", b"\xff" * 12])),
                    tok.enc, tok.value)
    elif mutation in ("drop", "repeat") and len(toks) > 4:
        i = draw(st.integers(4, len(toks) - 1))  # after api key, version, correlation id, client id length
        toks.insert(i, toks[i]) if mutation == "repeat" else toks.pop(i)
    elif mutation == "unknown_tag":
        counts = [i for i, t in enumerate(toks) if t.kind == "tagcount"]
        if counts:
            i = draw(st.sampled_from(counts))
            payload = draw(st.binary(max_size=8))
            claimed = draw(st.sampled_from([len(payload), len(payload) + 1, 1 << 20]))
            toks[i:i + 1] = [_int_tok("tagcount", "uvarint", toks[i].value + 1),
                             _int_tok("tag", "uvarint", draw(st.sampled_from([10_000, 0, 1 << 30]))),
                             _int_tok("len", "uvarint", claimed), Tok("raw", payload)]
    elif mutation == "api_key":
        toks[0] = _int_tok("fixed", "int16", draw(st.sampled_from([-1, 1000, 32767, 19, 37, 67])))
    elif mutation == "api_version":
        toks[1] = _int_tok("fixed", "int16", draw(st.sampled_from([-1, version + 1, 32767, 0])))
    frame = _frame(api_key, name, version, toks, mutation)
    payload = bytearray(frame.data[4:])
    if mutation == "flip" and len(payload) > 8:
        for _ in range(draw(st.integers(1, 3))):
            payload[draw(st.integers(8, len(payload) - 1))] ^= draw(st.integers(1, 255))  # keeps the correlation id
    elif mutation == "truncate":
        del payload[draw(st.integers(0, max(0, len(payload) - 1))):]
    elif mutation == "trailing":
        payload += draw(st.binary(min_size=1, max_size=16))
    size = len(payload)
    if mutation == "size":
        frame.terminal = True
        how = draw(st.sampled_from(["short_read", "negative", "huge", "tiny"]))
        if how == "negative":
            size = draw(st.sampled_from([-1, -(1 << 31)]))
        elif how == "huge":
            size = draw(st.sampled_from([(1 << 31) - 1, 100 * 1024 * 1024 + 1]))
        elif how == "short_read":  # promises more than is sent, then the client closes
            size += draw(st.sampled_from([1, 1000, 1 << 20]))
        else:
            size = draw(st.integers(0, 3))
            del payload[size:]
    frame.data = struct.pack(">i", size) + bytes(payload)
    return frame
