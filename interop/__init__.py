"""Real Kafka clients driven against a kafka-compat broker.

Each client module offers the same two calls, so that any producer can be
paired with any consumer:

    produce(bootstrap, topic, messages, *, partition=0, compression=None,
            idempotent=False) -> list[int] | None   # offset of each message
    consume(bootstrap, topic, count, *, partition=0, start_offset=0,
            timeout=60.0) -> list[Record]

kafka-python, confluent-kafka and aiokafka run in-process; kcat, kafkajs, the
Java client and the Go clients (franz-go, sarama) run as subprocesses.
`clients.PRODUCERS` and `clients.CONSUMERS` name them.
"""
