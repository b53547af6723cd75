"""Every client's produce() and consume(), by name."""
from __future__ import annotations

from . import (aiokafka_client, confluent_client, franz_go_client, java_client, kafka_python_client,
               kafkajs_client, kcat_client, sarama_client)

PRODUCERS = {
    "kafka-python": kafka_python_client.produce,
    "confluent-kafka": confluent_client.produce,
    "aiokafka": aiokafka_client.produce,
    "kcat": kcat_client.produce,
    "kafkajs": kafkajs_client.produce,
    "java": java_client.produce,
    "franz-go": franz_go_client.produce,
    "sarama": sarama_client.produce,  # the SyncProducer
    "sarama-async": sarama_client.produce_async,
}

CONSUMERS = {
    "kafka-python": kafka_python_client.consume,
    "confluent-kafka": confluent_client.consume,
    "aiokafka": aiokafka_client.consume,
    "kcat": kcat_client.consume,
    "kafkajs": kafkajs_client.consume,
    "java": java_client.consume,
    "franz-go": franz_go_client.consume,
    "sarama": sarama_client.consume,
}

# Clients that can only send text lines with per-run headers and no timestamps.
TEXT_ONLY = {"kcat"}
