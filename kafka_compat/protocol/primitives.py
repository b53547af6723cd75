"""Kafka's primitive wire types as construct classes.

Each class reads and writes through a small module-level function
(``read_*``/``write_*``) and, for ``Construct.compile()``, emits a call to that
same function, so the compiled parser and the interpreted one cannot drift
apart. The compiled module imports these functions by name (see
``_ensure_imports``).

Null handling follows Kafka: a nullable string/bytes/array has length -1
(compact: 0). Reading one that is not nullable in this version with a null
length fails ("non-nullable field was serialized as null", as Kafka's
generated readers say: the request is malformed); writing None for one still
writes the null length. Lengths and counts beyond the input fail before
anything is allocated.
"""
from __future__ import annotations

import struct

from construct import Construct, Container, ListContainer, StreamError

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")

FIXED = {"int8": _I8, "int16": _I16, "uint16": _U16, "int32": _I32, "int64": _I64, "float64": _F64}


def read_exact(io, n: int) -> bytes:
    if io.__class__ is FrameReader:
        return io.exact(n)
    data = io.read(n)
    if len(data) != n:
        raise StreamError(f"needed {n} bytes, got {len(data)}")
    return data


def read_uvarint(io) -> int:
    """An unsigned varint of at most 5 bytes (32 bits), as Kafka reads them: a longer
    one is corrupt, and would otherwise yield lengths too large to even index with."""
    if io.__class__ is FrameReader:
        pos, view = io.pos, io.view
        if pos < len(view) and view[pos] < 0x80:  # (most: lengths, counts, empty tag sections)
            io.pos = pos + 1
            return view[pos]
        value, io.pos = uvarint_at(view, pos)
        return value
    result = shift = 0
    while True:
        byte = io.read(1)
        if not byte:
            raise StreamError("truncated varint")
        b = byte[0]
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result
        shift += 7
        if shift > 28:
            raise StreamError("varint too long")


def uvarint_at(buf, pos: int) -> tuple[int, int]:
    """``read_uvarint`` in place, for a buffer: (value, position after it)."""
    size = len(buf)
    result = shift = 0
    while True:
        if pos >= size:
            raise StreamError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 28:
            raise StreamError("varint too long")


# Most varints written are small (lengths, counts, empty tagged-field sections).
_ONE_BYTE_UVARINTS = [bytes((i,)) for i in range(0x80)]


def encode_uvarint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _ONE_BYTE_UVARINTS[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def write_uvarint(io, value: int) -> None:
    io.write(encode_uvarint(value))


def read_fixed(io, st: struct.Struct):
    if io.__class__ is FrameReader:
        return io.unpack(st)
    return st.unpack(read_exact(io, st.size))[0]


def read_fixed_run(io, st: struct.Struct) -> tuple:
    """Consecutive fixed-width fields, one unpack for all of them (what a
    compiled struct reads: a follower's fetch has six in a row per partition)."""
    if io.__class__ is FrameReader:
        pos = io.pos
        end = pos + st.size
        if end > len(io.view):
            raise StreamError(f"needed {st.size} bytes, got {len(io.view) - pos}")
        io.pos = end
        return st.unpack_from(io.view, pos)
    return st.unpack(read_exact(io, st.size))


def read_bool(io) -> bool:
    return read_exact(io, 1) != b"\x00"


def write_bool(io, value) -> None:
    io.write(b"\x01" if value else b"\x00")


def read_uuid(io) -> bytes:
    return read_exact(io, 16)


def write_uuid(io, value) -> None:
    value = bytes(value) if value is not None else bytes(16)
    if len(value) != 16:
        raise StreamError("a uuid is 16 bytes")
    io.write(value)


def _read_length(io, compact: bool, wide: bool) -> int:
    if compact:
        return read_uvarint(io) - 1
    return read_fixed(io, _I32 if wide else _I16)


def _write_length(io, n: int, compact: bool, wide: bool) -> None:
    if compact:
        write_uvarint(io, n + 1)
    else:
        io.write((_I32 if wide else _I16).pack(n))


def _null(nullable: bool):
    if not nullable:
        raise StreamError("non-nullable field was serialized as null")
    return None


def read_string(io, compact: bool, nullable: bool = True):
    """Malformed UTF-8 becomes U+FFFD, as Java's ``new String(bytes, UTF_8)``
    in Kafka's readers makes it: the request is served, not refused."""
    n = _read_length(io, compact, False)
    if n < 0:
        return _null(nullable)
    if n > 0x7FFF:
        raise StreamError(f"string field had invalid length {n}")
    return read_exact(io, n).decode("utf-8", "replace")


def write_string(io, value, compact: bool) -> None:
    if value is None:
        _write_length(io, -1, compact, False)
        return
    data = value.encode("utf-8")
    _write_length(io, len(data), compact, False)
    io.write(data)


def read_bytes(io, compact: bool, nullable: bool = True):
    n = _read_length(io, compact, True)
    if n < 0:
        return _null(nullable)
    return read_exact(io, n)


def write_bytes(io, value, compact: bool) -> None:
    if value is None:
        _write_length(io, -1, compact, True)
        return
    _write_length(io, len(value), compact, True)
    io.write(value)


def _remaining(io) -> int:
    pos = io.tell()
    end = io.seek(0, 2)
    io.seek(pos)
    return end - pos


class FrameReader:
    """A stream over a request frame (a writable buffer) that hands records out as
    writable views of the frame instead of copies: produce validates and
    patches the batch where it arrived. The readers above decode fixed-size
    fields and varints from it in place (no bytes object per field)."""

    __slots__ = ("view", "pos")

    def __init__(self, frame, pos: int = 0):
        self.view = memoryview(frame)
        self.pos = pos

    def read(self, n: int = -1) -> bytes:
        end = len(self.view) if n < 0 else min(self.pos + n, len(self.view))
        data = bytes(self.view[self.pos : end])
        self.pos = end
        return data

    def exact(self, n: int) -> bytes:
        pos = self.pos
        end = pos + n
        if end > len(self.view):
            raise StreamError(f"needed {n} bytes, got {len(self.view) - pos}")
        self.pos = end
        return bytes(self.view[pos:end])

    def unpack(self, st: struct.Struct):
        pos = self.pos
        end = pos + st.size
        if end > len(self.view):
            raise StreamError(f"needed {st.size} bytes, got {len(self.view) - pos}")
        self.pos = end
        return st.unpack_from(self.view, pos)[0]

    def take(self, n: int) -> memoryview:
        view = self.view[self.pos : self.pos + n]
        self.pos += len(view)
        return view

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self.pos, len(self.view))[whence]
        self.pos = base + offset
        return self.pos


def read_records(io, compact: bool, nullable: bool = True):
    """Records are returned writable (produce patches offsets in place): a view
    of the frame from a FrameReader, else a bytearray. The length is checked
    against the input first, so a lying length prefix cannot make us allocate
    gigabytes."""
    n = _read_length(io, compact, True)
    if n < 0:
        return _null(nullable)
    if n > _remaining(io):
        raise StreamError(f"records length {n} exceeds the remaining input")
    if isinstance(io, FrameReader):
        return io.take(n)
    buf = bytearray(n)
    if io.readinto(buf) != n:
        raise StreamError("truncated records")
    return buf


class FileRegion:
    """``length`` bytes of an open file from ``offset``; the file stays open while
    the region exists (the log keeps segment files open). The sender writes it
    with os.sendfile."""

    __slots__ = ("fd", "offset", "length")

    def __init__(self, fd: int, offset: int, length: int):
        self.fd, self.offset, self.length = fd, offset, length


class DeferredRecords:
    """Records to be spliced into an encoded response after encoding.

    ``chunks`` is a list of bytes-like objects and FileRegions (anything the
    sender knows how to write); ``size`` is their total length, which goes into
    the length prefix. The encoder records where each DeferredRecords goes
    (``this['_params']['deferred']``) and the response becomes a chunk list.
    """

    __slots__ = ("chunks", "size")

    def __init__(self, chunks: list, size: int):
        self.chunks = chunks
        self.size = size


def write_records(io, value, compact: bool, this) -> None:
    if isinstance(value, DeferredRecords):
        _write_length(io, value.size, compact, True)
        this["_params"]["deferred"].append((io.tell(), value))
        return
    write_bytes(io, value, compact)


def read_array_length(io, compact: bool, nullable: bool = True) -> int:
    """An array's element count. Like Kafka's generated readers, a count larger
    than the bytes left in the request is refused before anything is allocated
    (an element takes a byte at least, or none for a struct with no fields in
    this version: a count of 2**31 must not become a list of 2**31 of those)."""
    n = _read_length(io, compact, True)
    if n < 0:
        _null(nullable)
    remaining = len(io.view) - io.pos if io.__class__ is FrameReader else _remaining(io)
    if n > remaining:
        raise StreamError(f"Tried to allocate a collection of size {n}, but there are only {remaining} bytes remaining.")
    return n


def write_array_length(io, value, compact: bool) -> None:
    _write_length(io, -1 if value is None else len(value), compact, True)


class Encoded:
    """An array value already encoded by the codec it stands in for (length
    prefix included): written as is. A handler answering the same large
    array again and again encodes it once (schema.field_codec)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data


class Message(Container):
    """A decoded struct: construct's Container (a dict whose keys read as
    attributes) with the keys looked up first. A Container finds a key only
    after the ordinary attribute lookup has failed, which raises and catches
    an AttributeError each time: about 0.75 µs a field on our machines,
    8 times this. (The one field named like a dict method,
    DescribeClientQuotas' ``values``, reads as the field.)"""

    __slots__ = ()

    def __getattribute__(self, name):
        try:
            return dict.__getitem__(self, name)
        except KeyError:
            return object.__getattribute__(self, name)


_IMPORTS = (
    "from kafka_compat.protocol.primitives import ("
    "Message, read_exact, read_uvarint, write_uvarint, read_fixed, read_fixed_run, read_bool, write_bool, "
    "read_uuid, write_uuid, read_string, write_string, read_bytes, write_bytes, read_records, write_records, "
    "read_array_length, write_array_length, read_tagged_fields, write_tagged_fields, Encoded, FIXED)"
)


def _ensure_imports(code) -> None:
    if not getattr(code, "_kafka_imports", False):
        code.append(_IMPORTS)
        code._kafka_imports = True


class Fixed(Construct):
    """int8/int16/uint16/int32/int64/float64, big-endian."""

    def __init__(self, typ: str):
        super().__init__()
        self.typ = typ
        self.st = FIXED[typ]

    def _parse(self, stream, context, path):
        return read_fixed(stream, self.st)

    def _build(self, obj, stream, context, path):
        stream.write(self.st.pack(obj))
        return obj

    def _emitparse(self, code):
        _ensure_imports(code)
        return f"read_fixed(io, FIXED[{self.typ!r}])"

    def _emitbuild(self, code):
        _ensure_imports(code)
        return f"io.write(FIXED[{self.typ!r}].pack(obj))"


class _Simple(Construct):
    """A type with a reader taking (io[, compact, nullable]) and a writer taking
    (io, value[, compact])."""

    reader = writer = ""

    def __init__(self, compact: bool = False, nullable: bool = True):
        super().__init__()
        self.compact = compact
        self.nullable = nullable

    def _args(self) -> str:
        return f", {self.compact}" if self.reader in _COMPACT_AWARE else ""

    def _parse(self, stream, context, path):
        fn = globals()[self.reader]
        return fn(stream, self.compact, self.nullable) if self.reader in _COMPACT_AWARE else fn(stream)

    def _build(self, obj, stream, context, path):
        fn = globals()[self.writer]
        if self.writer == "write_records":
            fn(stream, obj, self.compact, context)
        elif self.reader in _COMPACT_AWARE:
            fn(stream, obj, self.compact)
        else:
            fn(stream, obj)
        return obj

    def _emitparse(self, code):
        _ensure_imports(code)
        nullable = f", {self.nullable}" if self.reader in _COMPACT_AWARE else ""
        return f"{self.reader}(io{self._args()}{nullable})"

    def _emitbuild(self, code):
        _ensure_imports(code)
        extra = ", this" if self.writer == "write_records" else ""
        return f"{self.writer}(io, obj{self._args()}{extra})"


_COMPACT_AWARE = {"read_string", "read_bytes", "read_records"}


class Bool(_Simple):
    reader, writer = "read_bool", "write_bool"


class Uuid(_Simple):
    reader, writer = "read_uuid", "write_uuid"


class String(_Simple):
    reader, writer = "read_string", "write_string"


class Bytes(_Simple):
    reader, writer = "read_bytes", "write_bytes"


class Records(_Simple):
    reader, writer = "read_records", "write_records"


class Array(Construct):
    """Kafka ARRAY / COMPACT_ARRAY of one element type; null is None."""

    def __init__(self, subcon: Construct, compact: bool, nullable: bool = True):
        super().__init__()
        self.subcon = subcon
        self.compact = compact
        self.nullable = nullable

    def _parse(self, stream, context, path):
        n = read_array_length(stream, self.compact, self.nullable)
        if n < 0:
            return None
        return ListContainer(self.subcon._parsereport(stream, context, path) for _ in range(n))

    def _build(self, obj, stream, context, path):
        if obj.__class__ is Encoded:
            stream.write(obj.data)
            return obj
        write_array_length(stream, obj, self.compact)
        for item in obj or ():
            self.subcon._build(item, stream, context, path)
        return obj

    def _emitparse(self, code):
        _ensure_imports(code)
        fname = f"parse_karray_{code.allocateId()}"
        code.append(f"""
            def {fname}(io, this):
                n = read_array_length(io, {self.compact}, {self.nullable})
                if n < 0:
                    return None
                return ListContainer([{self.subcon._compileparse(code)} for _ in range(n)])
        """)
        return f"{fname}(io, this)"

    def _emitbuild(self, code):
        _ensure_imports(code)
        fname = f"build_karray_{code.allocateId()}"
        code.append(f"""
            def {fname}(items, io, this):
                if items.__class__ is Encoded:
                    io.write(items.data)
                    return items
                write_array_length(io, items, {self.compact})
                if items:
                    for obj in items:
                        {self.subcon._compilebuild(code)}
                return items
        """)
        return f"{fname}(obj, io, this)"


class TaggedField:
    """A known tagged field of a struct: its tag, python name, codec and default."""

    __slots__ = ("tag", "name", "codec", "default_src")

    def __init__(self, tag: int, name: str, codec: Construct, default_src: str):
        self.tag, self.name, self.codec, self.default_src = tag, name, codec, default_src


_NO_TAGS: dict = {}  # (never changed: callers merge it into their result)


def read_tagged_fields(io, known: dict, this) -> dict:
    """Read a tagged-field section. Known tags decode with their codec; unknown
    ones are skipped, as the protocol requires."""
    if io.__class__ is FrameReader and io.pos < len(io.view) and io.view[io.pos] == 0:
        io.pos += 1  # (the usual case: an empty section)
        return _NO_TAGS
    found = {}
    for _ in range(read_uvarint(io)):
        tag = read_uvarint(io)
        data = read_exact(io, read_uvarint(io))
        field = known.get(tag)
        if field is not None:
            found[field.name] = field.codec.parse(data)
    return found


def write_tagged_fields(io, fields: tuple, obj, this) -> None:
    """Write the tagged fields of ``obj`` that are present and not default."""
    if not fields:
        io.write(b"\x00")
        return
    present = []
    for field, default in fields:
        value = obj.get(field.name, default)
        if value is None or value == default:
            continue
        present.append((field.tag, field.codec.build(value)))
    write_uvarint(io, len(present))
    for tag, data in present:
        write_uvarint(io, tag)
        write_uvarint(io, len(data))
        io.write(data)


def _runs(fields: list) -> list:
    """A struct's fields, with each run of two or more consecutive fixed-width
    fields on the wire gathered in a list (read and written with one struct
    call instead of one per field)."""
    out: list = []
    run: list = []
    for field in fields + [None]:
        if field is not None and isinstance(field[1], Fixed):
            run.append(field)
            continue
        if len(run) > 1:
            out.append(run)
        else:
            out.extend(run)
        run = []
        if field is not None:
            out.append(field)
    return out


def _run_struct(code, run: list) -> str:
    """The name of a module-level struct.Struct for a run of Fixed fields."""
    fmt = ">" + "".join(codec.st.format.lstrip(">") for _, codec, _ in run)
    name = f"FIXED_RUN_{code.allocateId()}"
    code.append(f"{name} = struct.Struct({fmt!r})\n")
    return name


class Struct(Construct):
    """A Kafka struct: its fields in order, defaults for fields absent in this
    version (so handlers can ignore versions), and, in flexible versions, a
    tagged-field section whose known fields land in the same Message.

    ``fields`` holds (name, codec or None, default_src): codec None means the
    field is not on the wire in this version and parses as its default.
    ``default_src`` is a Python expression (a fresh value per use).
    """

    def __init__(self, fields: list, tagged: list[TaggedField] | None, nullable: bool = False):
        super().__init__()
        self.fields = fields
        self.tagged = tagged
        self.nullable = nullable
        self.tagged_by_tag = {f.tag: f for f in tagged or ()}

    # Interpreted path (used when not compiled; same semantics).
    def _parse(self, stream, context, path):
        if self.nullable and read_fixed(stream, _I8) < 0:
            return None
        result = Message()
        for name, codec, default_src in self.fields:
            result[name] = codec._parsereport(stream, context, path) if codec is not None else eval(default_src)
        if self.tagged is not None:
            for f in self.tagged:
                result[f.name] = eval(f.default_src)
            result.update(read_tagged_fields(stream, self.tagged_by_tag, context))
        return result

    def _build(self, obj, stream, context, path):
        if self.nullable:
            stream.write(_I8.pack(-1 if obj is None else 1))
            if obj is None:
                return obj
        for name, codec, default_src in self.fields:
            if codec is not None:
                codec._build(obj[name] if name in obj else eval(default_src), stream, context, path)
        if self.tagged is not None:
            write_tagged_fields(stream, tuple((f, eval(f.default_src)) for f in self.tagged), obj, context)
        return obj

    # Compiled path.
    def _emitparse(self, code):
        _ensure_imports(code)
        fid = code.allocateId()
        fname = f"parse_kstruct_{fid}"
        lines = [f"def {fname}(io, this):"]
        if self.nullable:
            lines.append("    if read_fixed(io, FIXED['int8']) < 0: return None")
        lines.append("    result = Message()")
        for run in _runs(self.fields):
            if isinstance(run, list):
                names = ", ".join(f"result[{name!r}]" for name, _, _ in run)
                lines.append(f"    {names}, = read_fixed_run(io, {_run_struct(code, run)})")
                continue
            name, codec, default_src = run
            expr = codec._compileparse(code) if codec is not None else default_src
            lines.append(f"    result[{name!r}] = {expr}")
        if self.tagged is not None:
            # linkedinstances is filled in after the module runs: look it up at call time.
            code.linkedinstances[f"tagged_{fid}"] = self.tagged_by_tag
            for f in self.tagged:
                lines.append(f"    result[{f.name!r}] = {f.default_src}")
            # (Message.update is Container's, Python code: a loop even over nothing.)
            lines.append(f"    tags = read_tagged_fields(io, linkedinstances['tagged_{fid}'], this)")
            lines.append("    if tags:")
            lines.append("        result.update(tags)")
        lines.append("    return result")
        code.append("\n".join(lines) + "\n")
        return f"{fname}(io, this)"

    def _emitbuild(self, code):
        _ensure_imports(code)
        fid = code.allocateId()
        fname = f"build_kstruct_{fid}"
        lines = [f"def {fname}(objdict, io, this):"]
        if self.nullable:
            lines.append("    io.write(FIXED['int8'].pack(-1 if objdict is None else 1))")
            lines.append("    if objdict is None: return None")
        for run in _runs(self.fields):
            if isinstance(run, list):
                values = ", ".join(f"objdict[{name!r}] if {name!r} in objdict else {default_src}"
                                   for name, _, default_src in run)
                lines.append(f"    io.write({_run_struct(code, run)}.pack({values}))")
                continue
            name, codec, default_src = run
            if codec is None:
                continue
            lines.append(f"    obj = objdict[{name!r}] if {name!r} in objdict else {default_src}")
            lines.append(f"    {codec._compilebuild(code)}")
        if self.tagged is not None:
            code.linkedinstances[f"tagged_{fid}"] = tuple((f, eval(f.default_src)) for f in self.tagged)
            lines.append(f"    write_tagged_fields(io, linkedinstances['tagged_{fid}'], objdict, this)")
        lines.append("    return objdict")
        code.append("\n".join(lines) + "\n")
        return f"{fname}(obj, io, this)"
