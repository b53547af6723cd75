// java -jar interop-java-client.jar consumer-session --bootstrap H:P --topic T
//        [--group G [--instance-id ID] [--assignor NAME]]
//   One KafkaConsumer (auto commit off, auto.offset.reset=earliest) answering
//   requests on stdin (Session's protocol), all on the main thread as the
//   consumer wants. Partitions are numbers of --topic.
//
//   {"op": "subscribe"}                                    -> null
//   {"op": "assign", "partitions": [p, ..]}                -> null
//   {"op": "seek", "partition", "offset"}                  -> null
//   {"op": "poll", "count", "timeout_ms"}   poll until `count` records (0: just for
//       timeout_ms) or timeout_ms -> [[partition, offset, timestamp], ..]
//   {"op": "wait-assignment", "timeout_ms"}  poll (keeping no records: use before any
//       arrive) until the group assigned partitions      -> [p, ..]
//   {"op": "pause"|"resume", "partitions": [p, ..]}        -> sorted paused partitions
//   {"op": "position", "partition"}                        -> offset
//   {"op": "assignment"}                                   -> [p, ..]
//   {"op": "offsets-for-times", "timestamps": {"p": ts}}
//       -> {"p": {"offset", "timestamp"} | null}
//   {"op": "commit-sync", "offsets"?: [[p, offset, metadata]]}  (none: the positions)
//                                                          -> null
//   {"op": "commit-async", "offsets": [[p, offset, metadata]]}
//       commitAsync with a callback, then commitSync() of nothing, which Kafka's
//       consumer returns from only once earlier async commits completed and their
//       callbacks ran -> {"callback": {"p": {"offset", "metadata"}} | null,
//                          "error": null | {"error", "message"}}
//   {"op": "committed", "partitions": [p, ..]}
//       -> {"p": {"offset", "metadata", "leader_epoch"} | null}

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

final class ConsumerSession {

    private final KafkaConsumer<byte[], byte[]> consumer;
    private final String topic;

    private ConsumerSession(KafkaConsumer<byte[], byte[]> consumer, String topic) {
        this.consumer = consumer;
        this.topic = topic;
    }

    static Properties config(JavaClient.Args args) {
        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args.required("bootstrap"));
        config.put(ConsumerConfig.CLIENT_ID_CONFIG, args.get("client-id", "interop-java"));
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        config.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "100");
        config.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        String group = args.get("group", null);
        if (group != null) {
            config.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            String assignor = args.get("assignor", null);
            if (assignor != null) {
                config.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, JavaClient.assignorClass(assignor));
            }
            String instanceId = args.get("instance-id", null);
            if (instanceId != null) {
                config.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instanceId);
            }
            config.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, args.get("session-timeout-ms", "10000"));
            config.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, args.get("heartbeat-interval-ms", "500"));
        }
        return config;
    }

    static void run(JavaClient.Args args) throws Exception {
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config(args))) {
            ConsumerSession session = new ConsumerSession(consumer, args.required("topic"));
            Session.run(session::handle);
        }
    }

    private TopicPartition tp(Object partition) {
        return new TopicPartition(topic, ((Number) partition).intValue());
    }

    private List<TopicPartition> tps(Map<String, Object> m) {
        List<TopicPartition> out = new ArrayList<>();
        for (Object p : Session.list(m, "partitions")) {
            out.add(tp(p));
        }
        return out;
    }

    private Map<TopicPartition, OffsetAndMetadata> offsets(Map<String, Object> m) {
        Map<TopicPartition, OffsetAndMetadata> out = new HashMap<>();
        for (Object o : Session.list(m, "offsets")) {
            List<?> t = (List<?>) o;
            out.put(tp(t.get(0)), new OffsetAndMetadata(((Number) t.get(1)).longValue(),
                    t.size() > 2 ? (String) t.get(2) : ""));
        }
        return out;
    }

    private static List<Integer> numbers(Set<TopicPartition> tps) {
        Set<Integer> out = new TreeSet<>();
        for (TopicPartition tp : tps) {
            out.add(tp.partition());
        }
        return new ArrayList<>(out);
    }

    private static Map<String, Object> committedOffsets(Map<TopicPartition, OffsetAndMetadata> offsets) {
        Map<String, Object> out = new TreeMap<>();
        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : offsets.entrySet()) {
            out.put(String.valueOf(e.getKey().partition()), AdminSession.offsetAndMetadata(e.getValue()));
        }
        return out;
    }

    Object handle(String op, Map<String, Object> m) throws Exception {
        switch (op) {
            case "subscribe" -> {
                consumer.subscribe(List.of(topic));
                return null;
            }
            case "assign" -> {
                consumer.assign(tps(m));
                return null;
            }
            case "seek" -> {
                consumer.seek(tp(m.get("partition")), Session.num(m, "offset"));
                return null;
            }
            case "poll" -> {
                long count = Session.num(m, "count");
                long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(Session.num(m, "timeout_ms"));
                List<Object> records = new ArrayList<>();
                while ((count == 0 || records.size() < count) && System.nanoTime() < deadline) {
                    long left = Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime()));
                    for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(Math.min(200, left)))) {
                        records.add(List.of(r.partition(), r.offset(), r.timestamp()));
                    }
                }
                return records;
            }
            case "wait-assignment" -> {
                long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(Session.num(m, "timeout_ms"));
                while (consumer.assignment().isEmpty() && System.nanoTime() < deadline) {
                    if (!consumer.poll(Duration.ofMillis(100)).isEmpty()) {
                        throw new IllegalStateException("wait-assignment received records");
                    }
                }
                return numbers(consumer.assignment());
            }
            case "pause" -> {
                consumer.pause(tps(m));
                return numbers(consumer.paused());
            }
            case "resume" -> {
                consumer.resume(tps(m));
                return numbers(consumer.paused());
            }
            case "position" -> {
                return consumer.position(tp(m.get("partition")));
            }
            case "assignment" -> {
                return numbers(consumer.assignment());
            }
            case "offsets-for-times" -> {
                Map<TopicPartition, Long> query = new HashMap<>();
                for (Map.Entry<String, Object> e : Session.map(m, "timestamps").entrySet()) {
                    query.put(new TopicPartition(topic, Integer.parseInt(e.getKey())),
                            ((Number) e.getValue()).longValue());
                }
                Map<String, Object> out = new TreeMap<>();
                for (Map.Entry<TopicPartition, OffsetAndTimestamp> e : consumer.offsetsForTimes(query).entrySet()) {
                    Map<String, Object> found = null;
                    if (e.getValue() != null) {
                        found = new LinkedHashMap<>();
                        found.put("offset", e.getValue().offset());
                        found.put("timestamp", e.getValue().timestamp());
                    }
                    out.put(String.valueOf(e.getKey().partition()), found);
                }
                return out;
            }
            case "commit-sync" -> {
                if (m.get("offsets") == null) {
                    consumer.commitSync();
                } else {
                    consumer.commitSync(offsets(m));
                }
                return null;
            }
            case "commit-async" -> {
                Map<String, Object> result = new LinkedHashMap<>();
                result.put("callback", null);
                result.put("error", null);
                Set<Boolean> called = new HashSet<>();
                consumer.commitAsync(offsets(m), (offsets, exception) -> {
                    called.add(true);
                    result.put("callback", offsets == null ? null : committedOffsets(offsets));
                    result.put("error", exception == null ? null : Session.error(exception));
                });
                consumer.commitSync(Map.of());
                if (called.isEmpty()) {
                    throw new IllegalStateException("commitSync returned before the commitAsync callback ran");
                }
                return result;
            }
            case "committed" -> {
                return committedOffsets(consumer.committed(new HashSet<>(tps(m))));
            }
            default -> throw new IllegalArgumentException("unknown op " + op);
        }
    }
}
