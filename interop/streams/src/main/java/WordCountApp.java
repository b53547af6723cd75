import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TaskMetadata;
import org.apache.kafka.streams.ThreadMetadata;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * Kafka Streams word count, the kafka-compat interop application
 * (interop/streams_app.py drives it).
 *
 * <pre>
 * java -jar target/interop-streams.jar --bootstrap HOST:PORT --input TOPIC --output TOPIC
 *     --application-id ID --state-dir DIR [--threads N] [--commit-interval-ms MS]
 *     [--config KEY=VALUE]...
 * </pre>
 *
 * Topology: the input topic's values are lines (String); each is split on
 * whitespace into words, re-keyed by word (groupBy, so a repartition topic
 * {@code <application.id>-words-repartition}), counted into the persistent
 * (RocksDB) key-value store "counts" backed by the changelog topic
 * {@code <application.id>-counts-changelog}, and every count update goes to
 * the output topic as word (String) -> count (Long, 8 bytes big-endian).
 *
 * processing.guarantee is at_least_once. stdout carries one JSON object a
 * line: {"event":"state","old":..,"new":..} at each KafkaStreams state change,
 * then {"event":"tasks","active":[..],"standby":[..]} (task ids) on each
 * change to RUNNING,
 * {"event":"error","thread":..,"error":..} for an exception that kills a
 * stream thread (the client then shuts down, so a failure is never hidden),
 * and {"event":"closed","clean":true|false} last. SIGTERM closes the
 * application (exit code 0 once KafkaStreams.close returned in time, else 1);
 * it exits 1 if it ended in the ERROR state.
 */
public final class WordCountApp {
    // Leave the group on close (Streams' consumers don't by default, so the
    // next instance would wait session.timeout.ms, 45 s, for the old members
    // to be dropped before it gets their partitions).
    static final CloseOptions CLOSE = CloseOptions
        .groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
        .withTimeout(Duration.ofSeconds(30));

    public static void main(String[] args) throws Exception {
        Map<String, String> options = new HashMap<>();
        List<String> configs = new ArrayList<>();
        for (int i = 0; i < args.length; i += 2) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                usage("bad argument " + args[i]);
            }
            String name = args[i].substring(2);
            if (name.equals("config")) {
                configs.add(args[i + 1]);
            } else {
                options.put(name, args[i + 1]);
            }
        }
        for (String required : List.of("bootstrap", "input", "output", "application-id", "state-dir")) {
            if (!options.containsKey(required)) {
                usage("missing --" + required);
            }
        }

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, options.get("application-id"));
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, options.get("bootstrap"));
        props.put(StreamsConfig.STATE_DIR_CONFIG, options.get("state-dir"));
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, options.getOrDefault("threads", "1"));
        // at_least_once commits every 30 s by default; the tests want to see
        // progress (committed offsets, the changelog) within a second or so.
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG,
                  options.getOrDefault("commit-interval-ms", "30000"));
        for (String config : configs) {
            int eq = config.indexOf('=');
            if (eq <= 0) {
                usage("--config wants KEY=VALUE, not " + config);
            }
            props.put(config.substring(0, eq), config.substring(eq + 1));
        }

        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(options.get("input"), Consumed.with(Serdes.String(), Serdes.String()))
            .flatMapValues(WordCountApp::words)
            .groupBy((key, word) -> word, Grouped.with("words", Serdes.String(), Serdes.String()))
            .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts")
                       .withKeySerde(Serdes.String())
                       .withValueSerde(Serdes.Long()))
            .toStream()
            .to(options.get("output"), Produced.with(Serdes.String(), Serdes.Long()));
        Topology topology = builder.build(props);
        System.err.println(topology.describe());

        KafkaStreams streams = new KafkaStreams(topology, props);
        CountDownLatch closed = new CountDownLatch(1);
        AtomicBoolean failed = new AtomicBoolean(false);
        streams.setStateListener((newState, oldState) -> {
            emit("{\"event\":\"state\",\"old\":\"" + oldState + "\",\"new\":\"" + newState + "\"}");
            if (newState == KafkaStreams.State.RUNNING) {
                emitTasks(streams);
            }
            if (newState == KafkaStreams.State.ERROR) {
                failed.set(true);
            }
            if (newState == KafkaStreams.State.NOT_RUNNING || newState == KafkaStreams.State.ERROR) {
                closed.countDown();
            }
        });
        streams.setUncaughtExceptionHandler(exception -> {
            emit("{\"event\":\"error\",\"thread\":\"" + json(Thread.currentThread().getName())
                 + "\",\"error\":\"" + json(String.valueOf(exception)) + "\"}");
            exception.printStackTrace();
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            boolean done = streams.close(CLOSE);
            emit("{\"event\":\"closed\",\"clean\":" + done + "}");
            // Exit 0 after a clean close (the JVM would say 143 for SIGTERM),
            // 1 if Streams didn't close within the timeout or had failed.
            Runtime.getRuntime().halt(done && !failed.get() ? 0 : 1);
        }));
        streams.start();
        closed.await();
        if (failed.get()) {
            boolean done = streams.close(CLOSE);
            emit("{\"event\":\"closed\",\"clean\":" + done + "}");
            Runtime.getRuntime().halt(1);
        }
        // NOT_RUNNING without ERROR: the shutdown hook is closing it.
    }

    /** {"event":"tasks","active":["0_1",..],"standby":[..]}: this instance's tasks. */
    static void emitTasks(KafkaStreams streams) {
        List<String> active = new ArrayList<>();
        List<String> standby = new ArrayList<>();
        for (ThreadMetadata thread : streams.metadataForLocalThreads()) {
            for (TaskMetadata task : thread.activeTasks()) {
                active.add("\"" + task.taskId() + "\"");
            }
            for (TaskMetadata task : thread.standbyTasks()) {
                standby.add("\"" + task.taskId() + "\"");
            }
        }
        Collections.sort(active);
        Collections.sort(standby);
        emit("{\"event\":\"tasks\",\"active\":[" + String.join(",", active)
             + "],\"standby\":[" + String.join(",", standby) + "]}");
    }

    static List<String> words(String line) {
        List<String> words = new ArrayList<>();
        if (line == null) {
            return words;
        }
        for (String word : line.toLowerCase(Locale.ROOT).split("\\s+")) {
            if (!word.isEmpty()) {
                words.add(word);
            }
        }
        return words;
    }

    static synchronized void emit(String line) {
        System.out.println(line);
        System.out.flush();
    }

    static String json(String text) {
        StringBuilder out = new StringBuilder();
        for (char c : text.toCharArray()) {
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.toString();
    }

    static void usage(String problem) {
        System.err.println("error: " + problem + "\nusage: WordCountApp --bootstrap HOST:PORT --input TOPIC"
            + " --output TOPIC --application-id ID --state-dir DIR [--threads N]"
            + " [--commit-interval-ms MS] [--config KEY=VALUE]...");
        System.exit(2);
    }
}
