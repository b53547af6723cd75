"""The client half of the differential suite: the same client operation
(confluent-kafka/librdkafka, kafka-python, the Java Admin) run against Apache
Kafka and against kafka-compat, and what the client returned or raised
compared field by field.

A `ClientCase` is data, like harness.Case: setup steps (harness steps over
our own protocol layer: topic(), records(), group(), commit()...) run on each
broker, then `op(env)` runs the client call and returns plain data; an
exception becomes {"raised": class, "error": code name, "message": text}, so
the error class, code and the broker's message text are all compared.
`differs` is the reason the two are known (and accepted) to differ; the case
is then a strict xfail.

Normalized for every case, each for a reason (see CLIENT_SUBS): the broker's
address and port in client texts. Cases add their own `ignore`/`subs`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from .harness import Ctx, differences, names_for, normalize, sort_lists

CLIENT_TIMEOUT_S = 20


@dataclass
class ClientCase:
    id: str
    client: str  # "confluent", "kafka-python", "java": the family, for the test id
    op: Callable[["Env"], Any]
    setup: tuple[Callable[[Ctx], Any], ...] = ()
    ignore: dict[str, str] = field(default_factory=dict)
    subs: dict[str, tuple[str, str]] = field(default_factory=dict)
    sort: dict[str, str] = field(default_factory=dict)
    differs: str | None = None


class Env(Ctx):
    """A harness Ctx (setup steps, names) plus what client calls need: the
    bootstrap address, the module's shared clients for this broker."""

    def __init__(self, side, host, port, names, shared: "Shared"):
        super().__init__(side, host, port, names)
        self.bootstrap = f"{host}:{port}"
        self.shared = shared

    def topics(self, *keys) -> list[str]:
        return [self.names[k] for k in keys]


class Shared:
    """Admin clients and Java sessions kept for the module, one per broker."""

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        self._ck = self._kp = self._java = None

    @property
    def ck_admin(self):
        if self._ck is None:
            from confluent_kafka.admin import AdminClient
            self._ck = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 20000})
        return self._ck

    @property
    def kp_admin(self):
        if self._kp is None:
            from kafka.admin import KafkaAdminClient
            self._kp = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=20000)
        return self._kp

    @property
    def java(self):
        if self._java is None:
            from interop import java_client
            self._java = java_client.admin_session(self.bootstrap, timeout=CLIENT_TIMEOUT_S)
        return self._java

    def close(self):
        if self._kp is not None:
            self._kp.close()
        if self._java is not None:
            self._java.close()


# ------------------------------------------------------------------ outcomes


def raised(exc: BaseException) -> dict:
    """What a client raised, as comparable data."""
    from confluent_kafka import KafkaError as CkError
    from kafka.errors import KafkaError as KpError

    from interop.java_client import JavaCallError

    if isinstance(exc, CkError):
        return {"raised": "KafkaError", "error": exc.name(), "message": exc.str()}
    if exc.args and isinstance(exc.args[0], CkError):
        err = exc.args[0]
        return {"raised": type(exc).__name__, "error": err.name(), "message": err.str()}
    if isinstance(exc, KpError):
        return {"raised": type(exc).__name__, "errno": getattr(exc, "errno", None), "message": str(exc)}
    if isinstance(exc, JavaCallError):
        return {"raised": exc.error, "message": exc.message}
    return {"raised": type(exc).__name__, "message": str(exc)}


# Raised by a mistake in a case, never by a client's answer: not compared.
CASE_BUGS = (TypeError, AttributeError, KeyError, NameError, UnicodeError, AssertionError)


def outcome(call: Callable[[], Any]) -> dict:
    try:
        return {"ok": call()}
    except CASE_BUGS:
        raise
    except Exception as exc:  # noqa: BLE001 - the exception is the answer compared
        return raised(exc)


def futures(fs: dict) -> dict:
    """confluent-kafka admin futures -> {key: result or raised}, keys as strings."""
    return {_key(k): outcome(f.result) for k, f in sorted(fs.items(), key=lambda kv: _key(kv[0]))}


def _key(k) -> str:
    if hasattr(k, "topic") and hasattr(k, "partition"):
        return f"{k.topic}:{k.partition}"
    return str(getattr(k, "name", None) or getattr(k, "group_id", None) or k)


# ------------------------------------------------------------------ running


def run_client_case(case: ClientCase, brokers, shared: dict[str, Shared]) -> None:
    names = names_for(f"{case.id}")
    answers = {}
    for side, (host, port) in (("kafka", brokers.reference_address), ("ours", brokers.ours_address)):
        env = Env(side, host, port, dict(names), shared[side])
        subs = {re.escape(f"{host}:{port}"): ("<broker>", "each broker listens on a free port of its own"),
                rf"\b{port}\b": ("<port>", "each broker listens on a free port of its own"),
                **case.subs}
        try:
            for step in case.setup:
                step(env)
            answer = outcome(lambda: case.op(env))
            answers[side] = sort_lists(normalize(answer, case.ignore, subs=subs), case.sort)
        finally:
            env.close()
    if os.environ.get("DIFFERENTIAL_SHOW"):
        print(f"\n{case.id}\n  kafka: {answers['kafka']!r}\n  ours:  {answers['ours']!r}")
    diffs = differences(answers["kafka"], answers["ours"])
    if diffs:
        pytest.fail(f"{case.client} {case.id}: answers differ:\n  " + "\n  ".join(diffs)
                    + f"\nkafka: {answers['kafka']!r}\nours:  {answers['ours']!r}", pytrace=False)


def client_params(cases: list[ClientCase]):
    out, seen = [], set()
    for case in cases:
        test_id = f"{case.client}-{case.id}"
        assert test_id not in seen, f"duplicate case id {test_id}"
        seen.add(test_id)
        marks = [pytest.mark.xfail(reason=case.differs, strict=True)] if case.differs else []
        out.append(pytest.param(case, id=test_id, marks=marks))
    return out
