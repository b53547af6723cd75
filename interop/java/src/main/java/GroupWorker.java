// java -jar interop-java-client.jar group --bootstrap H:P --topic T --group G --name N
//        [--session-timeout-ms MS] [--heartbeat-interval-ms MS] [--instance-id ID]
//        [--assignor range|roundrobin|sticky|cooperative-sticky]
//   A consumer-group member speaking interop/group_worker.py's protocol: events as
//   JSON lines on stdout (assigned, revoked, lost, records, committed,
//   commit_failed, closed), a line "stop" on stdin (or its end) to close.
//
//   Unlike the Python workers, which commit after every poll, this member commits
//   only where the Java client's documentation says a consumer must to avoid
//   duplicates: synchronously in ConsumerRebalanceListener.onPartitionsRevoked
//   (what it consumed in the revoked partitions) and before close(). So a group of
//   these consumes nothing twice across rebalances only if every commit made while
//   partitions are revoked reaches the coordinator before their next owner fetches
//   its offsets. A partition lost (onPartitionsLost) is not committed, as Kafka
//   says. A member killed with SIGKILL loses what it consumed since its last commit.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RebalanceInProgressException;

final class GroupWorker {

    private final Writer out = JavaClient.stdout();
    private final KafkaConsumer<byte[], byte[]> consumer;
    private final boolean incremental;
    /** Next offset to commit per partition: consumed but not committed yet. */
    private final Map<TopicPartition, Long> pending = new HashMap<>();

    private GroupWorker(KafkaConsumer<byte[], byte[]> consumer, boolean incremental) {
        this.consumer = consumer;
        this.incremental = incremental;
    }

    static void run(JavaClient.Args args) throws Exception {
        Properties config = ConsumerSession.config(args);
        config.put(ConsumerConfig.CLIENT_ID_CONFIG, "interop-java-" + args.required("name"));
        config.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, args.get("session-timeout-ms", "6000"));
        String assignor = args.get("assignor", null);
        // Kafka's consumer follows the rebalance protocol its assignors share:
        // cooperative only when all of them are (its default list has range, eager).
        boolean incremental = "cooperative-sticky".equals(assignor);
        AtomicBoolean stop = new AtomicBoolean();
        Thread watcher = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                for (String line; (line = in.readLine()) != null; ) {
                    if (line.strip().equals("stop")) {
                        break;
                    }
                }
            } catch (java.io.IOException e) {
                // stdin gone: stop as on its end
            }
            stop.set(true);
        }, "stdin-watch");
        watcher.setDaemon(true);
        watcher.start();

        GroupWorker worker;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config)) {
            worker = new GroupWorker(consumer, incremental);
            worker.loop(args.required("topic"), stop);
        }
        worker.emit("closed", Map.of());
    }

    private void loop(String topic, AtomicBoolean stop) throws Exception {
        consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
            @Override
            public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                Map<TopicPartition, Long> mine = new HashMap<>();
                for (TopicPartition tp : partitions) {
                    if (pending.containsKey(tp)) {
                        mine.put(tp, pending.get(tp));
                    }
                }
                commit(mine);
                partitions.forEach(pending::remove);
                emit("revoked", Map.of("partitions", numbers(partitions), "incremental", incremental));
            }

            @Override
            public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                emit("assigned", Map.of("partitions", numbers(partitions), "incremental", incremental));
            }

            @Override
            public void onPartitionsLost(Collection<TopicPartition> partitions) {
                partitions.forEach(pending::remove);
                emit("lost", Map.of("partitions", numbers(partitions)));
            }
        });
        while (!stop.get()) {
            pollOnce();
        }
        // close() of a dynamic member revokes (and so commits) too, but a static
        // member's close leaves it in the group without a revocation. While a
        // rebalance is under way (another member joining or leaving) the
        // consumer refuses to commit (RebalanceInProgressException) until a
        // poll() completes it: poll and retry, as the exception says to.
        for (int attempt = 1; ; attempt++) {
            RuntimeException error = tryCommit(new HashMap<>(pending));
            if (error == null) {
                break;
            }
            if (!(error instanceof RebalanceInProgressException) || attempt == 100) {
                reportFailure(error);
                break;
            }
            pollOnce();
        }
    }

    private void pollOnce() {
        List<Object> pairs = new ArrayList<>();
        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(100))) {
            pairs.add(List.of(r.partition(), r.offset()));
            pending.put(new TopicPartition(r.topic(), r.partition()), r.offset() + 1);
        }
        if (!pairs.isEmpty()) {
            emit("records", Map.of("records", pairs));
        }
    }

    /** commitSync of `offsets`; reported either way, dropped from pending on success. */
    private void commit(Map<TopicPartition, Long> offsets) {
        RuntimeException error = tryCommit(offsets);
        if (error != null) {
            reportFailure(error);
        }
    }

    private void reportFailure(RuntimeException e) {
        emit("commit_failed", Map.of("error", e.getClass().getSimpleName() + ": " + e.getMessage()));
    }

    /** commitSync of `offsets`: null when done (reported, dropped from pending), else the error. */
    private RuntimeException tryCommit(Map<TopicPartition, Long> offsets) {
        if (offsets.isEmpty()) {
            return null;
        }
        Map<TopicPartition, OffsetAndMetadata> commit = new HashMap<>();
        Map<String, Object> reported = new TreeMap<>();
        for (Map.Entry<TopicPartition, Long> e : offsets.entrySet()) {
            commit.put(e.getKey(), new OffsetAndMetadata(e.getValue()));
            reported.put(String.valueOf(e.getKey().partition()), e.getValue());
        }
        try {
            consumer.commitSync(commit);
        } catch (RuntimeException e) {
            return e;
        }
        for (Map.Entry<TopicPartition, Long> e : offsets.entrySet()) {
            pending.remove(e.getKey(), e.getValue());
        }
        emit("committed", Map.of("offsets", reported));
        return null;
    }

    private static List<Integer> numbers(Collection<TopicPartition> partitions) {
        return new ArrayList<>(new TreeSet<>(partitions.stream().map(TopicPartition::partition).toList()));
    }

    private void emit(String event, Map<String, Object> fields) {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("event", event);
        line.putAll(fields);
        StringBuilder s = new StringBuilder();
        JavaClient.Json.write(s, line);
        try {
            synchronized (out) {
                out.write(s.append('\n').toString());
                out.flush();
            }
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
