// The Java client (org.apache.kafka:kafka-clients) for the kafka-compat
// interop tests; interop/java_client.py drives it. One whole scenario per run,
// so a test pays the JVM's start once per produce or consume, not per message.
//
//   java -jar interop-java-client.jar produce --bootstrap H:P --topic T
//        [--partition N|any] [--acks 0|1|all] [--compression none|gzip|snappy|lz4|zstd]
//        [--idempotent] [--partitioner modulo] [--linger-ms MS] [--timeout-ms MS]
//        < messages.jsonl
//     stdin: {"key", "value", "headers": [[name, value]], "timestamp"} per line,
//     bytes in base64, null for null (a null timestamp: the client stamps it).
//     stdout, after every send was acknowledged: {"partition": P, "offset": N}
//     per message in input order (offset -1 with acks=0, as the client reports).
//     --partition any leaves the choice to the partitioner: the default one, or
//     with --partitioner modulo the KeyModulo partitioner below (a custom
//     Partitioner class, as applications plug in).
//
//   java -jar interop-java-client.jar consume --bootstrap H:P --topic T --count N
//        [--partition P] [--offset O | --from beginning|end]
//        [--group G [--assignor range|roundrobin|sticky|cooperative-sticky]
//         [--instance-id ID] [--commit]] [--timeout-ms MS]
//     without --group: assign() one partition and seek() (default offset 0);
//     with --group: subscribe() from the earliest offset (commitSync at the end
//     with --commit). stdout: one record per line, the produce encoding plus
//     partition, offset and timestamp_type ("create" or "log_append").
//     Exits 3 when fewer than N records arrived in time (those are printed).
//
//   java -jar interop-java-client.jar create-topic --bootstrap H:P --topic T
//        [--partitions N] [--replication-factor R] [--config name=value]...
//   java -jar interop-java-client.jar delete-topic --bootstrap H:P (--topic T | --id UUID)
//   java -jar interop-java-client.jar describe-topic --bootstrap H:P --topic T
//     stdout: {"name", "id", "internal", "partitions": [{"partition", "leader",
//     "replicas", "isr"}]}
//   java -jar interop-java-client.jar describe-cluster --bootstrap H:P
//     stdout: {"cluster_id", "controller", "nodes": [{"id", "host", "port", "rack"}]}
//
//   admin-session, consumer-session: one client answering a scripted sequence
//   of requests, JSON lines on stdin and stdout (Session.java; the requests in
//   AdminSession.java and ConsumerSession.java).
//   group: a consumer-group member for interop/group_member.py (GroupWorker.java).
//   txn-session, read and read-all (with an isolation level), ctp (consume-transform-produce,
//   exactly once): transactions, Transactions.java.
//
// Errors: a message on stderr and exit status 1 (2 for bad usage). The
// client's own logging goes to stderr at WARN unless
// -Dorg.slf4j.simpleLogger.defaultLogLevel says otherwise.

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.PrintStream;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.Partitioner;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Cluster;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class JavaClient {

    public static void main(String[] argv) throws Exception {
        if (System.getProperty("org.slf4j.simpleLogger.defaultLogLevel") == null) {
            System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        }
        System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
        if (argv.length == 0) {
            usage("no command");
        }
        Args args = new Args(argv);
        try {
            switch (argv[0]) {
                case "produce" -> produce(args);
                case "consume" -> System.exit(consume(args));
                case "create-topic" -> createTopic(args);
                case "delete-topic" -> deleteTopic(args);
                case "describe-topic" -> describeTopic(args);
                case "describe-cluster" -> describeCluster(args);
                case "admin-session" -> AdminSession.run(args);
                case "consumer-session" -> ConsumerSession.run(args);
                case "group" -> GroupWorker.run(args);
                case "txn-session" -> Transactions.session(args);
                case "read" -> System.exit(Transactions.read(args));
                case "read-all" -> Transactions.readAll(args);
                case "ctp" -> Transactions.consumeTransformProduce(args);
                default -> usage("unknown command " + argv[0]);
            }
        } catch (ExecutionException e) {
            fail(argv[0], e.getCause());
        } catch (Exception e) {
            fail(argv[0], e);
        }
        System.exit(0);
    }

    static void fail(String command, Throwable error) {
        System.err.println("java " + command + " failed: " + error);
        error.printStackTrace(System.err);
        System.exit(1);
    }

    static void usage(String why) {
        System.err.println("usage: JavaClient produce|consume|create-topic|delete-topic|describe-topic|"
                + "describe-cluster|admin-session|consumer-session|group|txn-session|read|read-all|ctp --bootstrap H:P ... (" + why + ")");
        System.exit(2);
    }

    // ---- produce ------------------------------------------------------------------------

    /** A custom partitioner: the key, a decimal number in ASCII, modulo the partition count. */
    public static final class KeyModulo implements Partitioner {
        @Override
        public int partition(String topic, Object key, byte[] keyBytes, Object value, byte[] valueBytes,
                             Cluster cluster) {
            int count = cluster.partitionCountForTopic(topic);
            long number = Long.parseLong(new String(keyBytes, StandardCharsets.US_ASCII));
            return (int) Math.floorMod(number, (long) count);
        }

        @Override
        public void close() {
        }

        @Override
        public void configure(Map<String, ?> configs) {
        }
    }

    static void produce(Args args) throws Exception {
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args.required("bootstrap"));
        config.put(ProducerConfig.CLIENT_ID_CONFIG, "interop-java");
        config.put(ProducerConfig.ACKS_CONFIG, args.get("acks", "all"));
        boolean idempotent = args.flag("idempotent");
        // enable.idempotence defaults to true since Kafka 3.0: say which one is meant.
        config.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, String.valueOf(idempotent));
        config.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, args.get("compression", "none"));
        config.put(ProducerConfig.LINGER_MS_CONFIG, args.get("linger-ms", "5"));
        config.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, args.get("timeout-ms", "60000"));
        config.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        String partitioner = args.get("partitioner", null);
        if ("modulo".equals(partitioner)) {
            config.put(ProducerConfig.PARTITIONER_CLASS_CONFIG, KeyModulo.class.getName());
        } else if (partitioner != null) {
            usage("unknown partitioner " + partitioner);
        }
        String partitionArg = args.get("partition", "0");
        Integer partition = "any".equals(partitionArg) ? null : Integer.valueOf(partitionArg);
        String topic = args.required("topic");

        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8), 1 << 16);
        for (String line; (line = in.readLine()) != null; ) {
            if (line.isBlank()) {
                continue;
            }
            @SuppressWarnings("unchecked")
            Map<String, Object> m = (Map<String, Object>) Json.parse(line);
            RecordHeaders headers = new RecordHeaders();
            for (Object pair : (List<?>) m.getOrDefault("headers", List.of())) {
                List<?> nameValue = (List<?>) pair;
                headers.add((String) nameValue.get(0), unb64(nameValue.get(1)));
            }
            Object ts = m.get("timestamp");
            Long timestamp = ts == null ? null : ((Number) ts).longValue();
            records.add(new ProducerRecord<>(topic, partition, timestamp, unb64(m.get("key")),
                    unb64(m.get("value")), headers));
        }

        RecordMetadata[] acked = new RecordMetadata[records.size()];
        AtomicReference<Exception> error = new AtomicReference<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config)) {
            for (int i = 0; i < records.size(); i++) {
                final int index = i;
                producer.send(records.get(i), (metadata, exception) -> {
                    if (exception != null) {
                        error.compareAndSet(null, new RuntimeException("message " + index + ": " + exception,
                                exception));
                    } else {
                        acked[index] = metadata;
                    }
                });
            }
            producer.flush();
        }
        if (error.get() != null) {
            throw error.get();
        }
        Writer out = stdout();
        for (RecordMetadata metadata : acked) {
            out.write("{\"partition\":" + metadata.partition() + ",\"offset\":" + metadata.offset() + "}\n");
        }
        out.flush();
    }

    // ---- consume ------------------------------------------------------------------------

    static int consume(Args args) throws Exception {
        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args.required("bootstrap"));
        config.put(ConsumerConfig.CLIENT_ID_CONFIG, "interop-java");
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
                config.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignorClass(assignor));
            }
            String instanceId = args.get("instance-id", null);
            if (instanceId != null) {
                config.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instanceId);
            }
        }
        String topic = args.required("topic");
        int count = Integer.parseInt(args.required("count"));
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(Long.parseLong(args.get("timeout-ms", "60000")));
        Writer out = stdout();
        int seen = 0;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config)) {
            if (group != null) {
                consumer.subscribe(List.of(topic));
            } else {
                TopicPartition tp = new TopicPartition(topic, Integer.parseInt(args.get("partition", "0")));
                consumer.assign(List.of(tp));
                String from = args.get("from", null);
                if ("beginning".equals(from)) {
                    consumer.seekToBeginning(List.of(tp));
                } else if ("end".equals(from)) {
                    consumer.seekToEnd(List.of(tp));
                } else if (from != null) {
                    usage("--from beginning|end, not " + from);
                } else {
                    consumer.seek(tp, Long.parseLong(args.get("offset", "0")));
                }
            }
            while (seen < count && System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    if (seen >= count) {
                        break;
                    }
                    seen++;
                    writeRecord(out, r);
                }
                out.flush();
            }
            if (group != null && args.flag("commit")) {
                consumer.commitSync();
            }
        }
        out.flush();
        if (seen < count) {
            System.err.println("java consume: timed out with " + seen + " of " + count + " records");
            return 3;
        }
        return 0;
    }

    static String assignorClass(String name) {
        return switch (name) {
            case "range" -> "org.apache.kafka.clients.consumer.RangeAssignor";
            case "roundrobin" -> "org.apache.kafka.clients.consumer.RoundRobinAssignor";
            case "sticky" -> "org.apache.kafka.clients.consumer.StickyAssignor";
            case "cooperative-sticky" -> "org.apache.kafka.clients.consumer.CooperativeStickyAssignor";
            default -> throw new IllegalArgumentException("unknown assignor " + name);
        };
    }

    static void writeRecord(Writer out, ConsumerRecord<byte[], byte[]> r) throws java.io.IOException {
        StringBuilder s = new StringBuilder(256);
        s.append("{\"partition\":").append(r.partition())
                .append(",\"offset\":").append(r.offset())
                .append(",\"key\":").append(b64(r.key()))
                .append(",\"value\":").append(b64(r.value()))
                .append(",\"headers\":[");
        boolean first = true;
        for (Header h : r.headers()) {
            if (!first) {
                s.append(',');
            }
            first = false;
            s.append('[');
            Json.string(s, h.key());
            s.append(',').append(b64(h.value())).append(']');
        }
        s.append("],\"timestamp\":").append(r.timestamp())
                .append(",\"timestamp_type\":")
                .append(r.timestampType() == TimestampType.CREATE_TIME ? "\"create\""
                        : r.timestampType() == TimestampType.LOG_APPEND_TIME ? "\"log_append\"" : "null")
                .append("}\n");
        out.write(s.toString());
    }

    // ---- admin --------------------------------------------------------------------------

    static Admin admin(Args args) {
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args.required("bootstrap"));
        config.put(AdminClientConfig.CLIENT_ID_CONFIG, "interop-java");
        config.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        config.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, args.get("timeout-ms", "60000"));
        return Admin.create(config);
    }

    static void createTopic(Args args) throws Exception {
        Map<String, String> configs = new HashMap<>();
        for (String pair : args.all("config")) {
            int eq = pair.indexOf('=');
            configs.put(pair.substring(0, eq), pair.substring(eq + 1));
        }
        NewTopic topic = new NewTopic(args.required("topic"), Integer.parseInt(args.get("partitions", "1")),
                Short.parseShort(args.get("replication-factor", "1"))).configs(configs);
        try (Admin admin = admin(args)) {
            Uuid id = admin.createTopics(List.of(topic)).topicId(topic.name()).get();
            printJson(Map.of("name", topic.name(), "id", id.toString()));
        }
    }

    static void deleteTopic(Args args) throws Exception {
        try (Admin admin = admin(args)) {
            String id = args.get("id", null);
            TopicCollection which = id != null ? TopicCollection.ofTopicIds(List.of(Uuid.fromString(id)))
                    : TopicCollection.ofTopicNames(List.of(args.required("topic")));
            admin.deleteTopics(which).all().get();
            printJson(Map.of("ok", true));
        }
    }

    static void describeTopic(Args args) throws Exception {
        String name = args.required("topic");
        try (Admin admin = admin(args)) {
            TopicDescription d = admin.describeTopics(List.of(name)).allTopicNames().get().get(name);
            List<Object> partitions = new ArrayList<>();
            for (TopicPartitionInfo p : d.partitions()) {
                Map<String, Object> pm = new LinkedHashMap<>();
                pm.put("partition", p.partition());
                pm.put("leader", p.leader() == null ? null : p.leader().id());
                pm.put("replicas", ids(p.replicas()));
                pm.put("isr", ids(p.isr()));
                partitions.add(pm);
            }
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("name", d.name());
            out.put("id", d.topicId().toString());
            out.put("internal", d.isInternal());
            out.put("partitions", partitions);
            printJson(out);
        }
    }

    static void describeCluster(Args args) throws Exception {
        try (Admin admin = admin(args)) {
            DescribeClusterResult c = admin.describeCluster();
            List<Object> nodes = new ArrayList<>();
            for (Node n : c.nodes().get()) {
                Map<String, Object> nm = new LinkedHashMap<>();
                nm.put("id", n.id());
                nm.put("host", n.host());
                nm.put("port", n.port());
                nm.put("rack", n.rack());
                nodes.add(nm);
            }
            Node controller = c.controller().get();
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("cluster_id", c.clusterId().get());
            out.put("controller", controller == null || controller.isEmpty() ? null : controller.id());
            out.put("nodes", nodes);
            printJson(out);
        }
    }

    static List<Object> ids(Collection<Node> nodes) {
        List<Object> out = new ArrayList<>();
        for (Node n : nodes) {
            out.add(n.id());
        }
        return out;
    }

    // ---- helpers ------------------------------------------------------------------------

    static Writer stdout() {
        return new BufferedWriter(new OutputStreamWriter(new PrintStream(System.out, false), StandardCharsets.UTF_8),
                1 << 16);
    }

    static void printJson(Object value) throws java.io.IOException {
        StringBuilder s = new StringBuilder();
        Json.write(s, value);
        Writer out = stdout();
        out.write(s.append('\n').toString());
        out.flush();
    }

    static byte[] unb64(Object text) {
        return text == null ? null : Base64.getDecoder().decode((String) text);
    }

    static String b64(byte[] data) {
        return data == null ? "null" : "\"" + Base64.getEncoder().encodeToString(data) + "\"";
    }

    /** --name value options; a flag is an option without a value. */
    static final class Args {
        private static final java.util.Set<String> FLAGS = java.util.Set.of("idempotent", "commit");
        private final Map<String, List<String>> values = new HashMap<>();

        Args(String[] argv) {
            for (int i = 1; i < argv.length; i++) {
                if (!argv[i].startsWith("--")) {
                    usage("unexpected argument " + argv[i]);
                }
                String name = argv[i].substring(2);
                if (FLAGS.contains(name)) {
                    values.computeIfAbsent(name, k -> new ArrayList<>()).add("true");
                } else if (i + 1 < argv.length) {
                    values.computeIfAbsent(name, k -> new ArrayList<>()).add(argv[++i]);
                } else {
                    usage("--" + name + " needs a value");
                }
            }
        }

        String get(String name, String fallback) {
            List<String> v = values.get(name);
            return v == null ? fallback : v.get(v.size() - 1);
        }

        String required(String name) {
            String v = get(name, null);
            if (v == null) {
                usage("--" + name + " is required");
            }
            return v;
        }

        boolean flag(String name) {
            return values.containsKey(name);
        }

        List<String> all(String name) {
            return values.getOrDefault(name, List.of());
        }
    }

    /** Just enough JSON: the message lines in, a few objects out (no dependency to load). */
    static final class Json {
        private final String text;
        private int pos;

        private Json(String text) {
            this.text = text;
        }

        static Object parse(String text) {
            Json p = new Json(text);
            Object value = p.value();
            p.space();
            if (p.pos != text.length()) {
                throw p.error("trailing characters");
            }
            return value;
        }

        private IllegalArgumentException error(String what) {
            return new IllegalArgumentException("bad JSON (" + what + ") at " + pos + ": " + text);
        }

        private void space() {
            while (pos < text.length() && Character.isWhitespace(text.charAt(pos))) {
                pos++;
            }
        }

        private Object value() {
            space();
            if (pos >= text.length()) {
                throw error("unexpected end");
            }
            char c = text.charAt(pos);
            switch (c) {
                case '{': {
                    pos++;
                    Map<String, Object> map = new LinkedHashMap<>();
                    space();
                    if (text.charAt(pos) == '}') {
                        pos++;
                        return map;
                    }
                    while (true) {
                        space();
                        String key = string();
                        space();
                        expect(':');
                        map.put(key, value());
                        space();
                        if (text.charAt(pos) == ',') {
                            pos++;
                        } else {
                            expect('}');
                            return map;
                        }
                    }
                }
                case '[': {
                    pos++;
                    List<Object> list = new ArrayList<>();
                    space();
                    if (text.charAt(pos) == ']') {
                        pos++;
                        return list;
                    }
                    while (true) {
                        list.add(value());
                        space();
                        if (text.charAt(pos) == ',') {
                            pos++;
                        } else {
                            expect(']');
                            return list;
                        }
                    }
                }
                case '"':
                    return string();
                default:
                    if (text.startsWith("null", pos)) {
                        pos += 4;
                        return null;
                    }
                    if (text.startsWith("true", pos)) {
                        pos += 4;
                        return Boolean.TRUE;
                    }
                    if (text.startsWith("false", pos)) {
                        pos += 5;
                        return Boolean.FALSE;
                    }
                    int start = pos;
                    while (pos < text.length() && "+-0123456789.eE".indexOf(text.charAt(pos)) >= 0) {
                        pos++;
                    }
                    if (start == pos) {
                        throw error("unexpected character");
                    }
                    String number = text.substring(start, pos);
                    if (number.contains(".") || number.contains("e") || number.contains("E")) {
                        return Double.parseDouble(number);
                    }
                    return Long.parseLong(number);
            }
        }

        private void expect(char c) {
            if (pos >= text.length() || text.charAt(pos) != c) {
                throw error("expected " + c);
            }
            pos++;
        }

        private String string() {
            expect('"');
            StringBuilder s = new StringBuilder();
            while (true) {
                if (pos >= text.length()) {
                    throw error("unterminated string");
                }
                char c = text.charAt(pos++);
                if (c == '"') {
                    return s.toString();
                }
                if (c != '\\') {
                    s.append(c);
                    continue;
                }
                char e = text.charAt(pos++);
                switch (e) {
                    case 'n' -> s.append('\n');
                    case 't' -> s.append('\t');
                    case 'r' -> s.append('\r');
                    case 'b' -> s.append('\b');
                    case 'f' -> s.append('\f');
                    case 'u' -> {
                        s.append((char) Integer.parseInt(text.substring(pos, pos + 4), 16));
                        pos += 4;
                    }
                    default -> s.append(e);
                }
            }
        }

        static void string(StringBuilder s, String value) {
            s.append('"');
            for (int i = 0; i < value.length(); i++) {
                char c = value.charAt(i);
                if (c == '"' || c == '\\') {
                    s.append('\\').append(c);
                } else if (c < 0x20) {
                    s.append(String.format("\\u%04x", (int) c));
                } else {
                    s.append(c);
                }
            }
            s.append('"');
        }

        static void write(StringBuilder s, Object value) {
            if (value == null) {
                s.append("null");
            } else if (value instanceof String str) {
                string(s, str);
            } else if (value instanceof Number || value instanceof Boolean) {
                s.append(value);
            } else if (value instanceof Map<?, ?> map) {
                s.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : map.entrySet()) {
                    if (!first) {
                        s.append(',');
                    }
                    first = false;
                    string(s, String.valueOf(e.getKey()));
                    s.append(':');
                    write(s, e.getValue());
                }
                s.append('}');
            } else if (value instanceof List<?> list) {
                s.append('[');
                for (int i = 0; i < list.size(); i++) {
                    if (i > 0) {
                        s.append(',');
                    }
                    write(s, list.get(i));
                }
                s.append(']');
            } else {
                string(s, value.toString());
            }
        }
    }
}
