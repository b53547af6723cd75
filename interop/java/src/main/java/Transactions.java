// The Java client's transactions (KIP-98) for the kafka-compat interop tests.
//
//   java -jar interop-java-client.jar txn-session --bootstrap H:P --transactional-id ID
//        [--transaction-timeout-ms MS]
//     One transactional KafkaProducer answering requests on stdin (Session's protocol):
//     {"op": "init"}                                   initTransactions -> null
//     {"op": "begin"}                                  beginTransaction -> null
//     {"op": "send", "records": [[topic, partition, key, value], ..]}  (bytes in base64)
//         send each, then flush -> [[partition, offset], ..]; a failed send is the error
//     {"op": "send-offsets", "group", "offsets": [[topic, partition, offset], ..]}
//         sendOffsetsToTransaction (a group without members) -> null
//     {"op": "commit"} | {"op": "abort"}               commitTransaction | abortTransaction -> null
//     A fenced producer answers {"error": "ProducerFencedException", ...} (or
//     InvalidProducerEpochException): the zombie test reads that.
//
//   java -jar interop-java-client.jar read --bootstrap H:P --isolation read_committed|read_uncommitted
//        --partition TOPIC:P:COUNT [--partition ...] [--timeout-ms MS]
//     assign() the partitions, read each from its beginning until COUNT records
//     of it arrived; stdout: one record a line (the consume encoding plus
//     "topic"), exit 3 when some partition had fewer in time (those are printed).
//
//   java -jar interop-java-client.jar read-all --bootstrap H:P --isolation LEVEL --topic T
//        [--timeout-ms MS]
//     every partition of T from its beginning to its end offset when the read
//     starts (at read_committed, the last stable offset: endOffsets at that
//     isolation), past control records as the consumer's position goes;
//     stdout as read's. Fails if a partition is not read to its end in time.
//
//   java -jar interop-java-client.jar ctp --bootstrap H:P --input T --output T --group G
//        --transactional-id ID [--transaction-timeout-ms MS] [--timeout-ms MS]
//     Consume-transform-produce, exactly once: a read_committed consumer assigned
//     every partition of the input, a transactional producer writing each input
//     record (key, "t:" + value) to the same partition of the output, the
//     consumed offsets sent to the transaction for group G, one transaction per
//     poll. Any failure (a broker killed midway, a coordinator moved): the
//     producer is closed and a new one initialised (which completes or aborts
//     what the old one left), the consumer rewound to the group's committed
//     offsets, and on. Runs until the committed offsets reach the input's end
//     offsets as they were at the start. stdout, a line per event:
//     {"committed": N} after each commit (N: input records committed in all),
//     {"recovering": "Exception: message"} at each failure, {"done": N} at the end.

import java.io.Writer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

final class Transactions {

    private Transactions() {
    }

    static KafkaProducer<byte[], byte[]> producer(JavaClient.Args args) {
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args.required("bootstrap"));
        config.put(ProducerConfig.CLIENT_ID_CONFIG, "interop-java-txn");
        config.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, args.required("transactional-id"));
        config.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, args.get("transaction-timeout-ms", "60000"));
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        config.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        config.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        config.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        // How long initTransactions, commitTransaction, abortTransaction and
        // sendOffsetsToTransaction wait for the coordinator before failing.
        config.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, args.get("max-block-ms", "30000"));
        config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        return new KafkaProducer<>(config);
    }

    static Properties consumerConfig(String bootstrap, String isolation, String group) {
        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ConsumerConfig.CLIENT_ID_CONFIG, "interop-java-txn");
        config.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        config.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "100");
        config.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        config.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "15000");
        config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        if (group != null) {
            config.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        }
        return config;
    }

    // ---- txn-session ----------------------------------------------------------------------

    static void session(JavaClient.Args args) throws Exception {
        try (KafkaProducer<byte[], byte[]> producer = producer(args)) {
            Session.run((op, m) -> handle(producer, op, m));
        }
    }

    private static Object handle(KafkaProducer<byte[], byte[]> producer, String op, Map<String, Object> m)
            throws Exception {
        switch (op) {
            case "init" -> producer.initTransactions();
            case "begin" -> producer.beginTransaction();
            case "send" -> {
                List<Future<RecordMetadata>> sent = new ArrayList<>();
                for (Object o : Session.list(m, "records")) {
                    List<?> r = (List<?>) o;
                    sent.add(producer.send(new ProducerRecord<>((String) r.get(0), ((Number) r.get(1)).intValue(),
                            JavaClient.unb64(r.get(2)), JavaClient.unb64(r.get(3)))));
                }
                producer.flush();
                List<Object> acked = new ArrayList<>();
                for (Future<RecordMetadata> f : sent) {
                    RecordMetadata metadata = f.get();
                    acked.add(List.of(metadata.partition(), metadata.offset()));
                }
                return acked;
            }
            case "send-offsets" -> {
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                for (Object o : Session.list(m, "offsets")) {
                    List<?> t = (List<?>) o;
                    offsets.put(new TopicPartition((String) t.get(0), ((Number) t.get(1)).intValue()),
                            new OffsetAndMetadata(((Number) t.get(2)).longValue()));
                }
                producer.sendOffsetsToTransaction(offsets, new ConsumerGroupMetadata(Session.str(m, "group")));
            }
            case "commit" -> producer.commitTransaction();
            case "abort" -> producer.abortTransaction();
            default -> throw new IllegalArgumentException("unknown op " + op);
        }
        return null;
    }

    // ---- read ------------------------------------------------------------------------------

    static int read(JavaClient.Args args) throws Exception {
        Map<TopicPartition, Integer> wanted = new LinkedHashMap<>();
        for (String spec : args.all("partition")) {
            int last = spec.lastIndexOf(':');
            int middle = spec.lastIndexOf(':', last - 1);
            wanted.put(new TopicPartition(spec.substring(0, middle), Integer.parseInt(spec.substring(middle + 1, last))),
                    Integer.parseInt(spec.substring(last + 1)));
        }
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(Long.parseLong(args.get("timeout-ms", "60000")));
        Map<TopicPartition, Integer> seen = new HashMap<>();
        Writer out = JavaClient.stdout();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(
                consumerConfig(args.required("bootstrap"), args.required("isolation"), null))) {
            consumer.assign(wanted.keySet());
            consumer.seekToBeginning(wanted.keySet());
            while (!complete(wanted, seen) && System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    TopicPartition tp = new TopicPartition(r.topic(), r.partition());
                    seen.merge(tp, 1, Integer::sum);
                    java.io.StringWriter line = new java.io.StringWriter();
                    JavaClient.writeRecord(line, r);
                    StringBuilder s = new StringBuilder("{\"topic\":");
                    JavaClient.Json.string(s, r.topic());
                    out.write(s.append(',').append(line.toString(), 1, line.toString().length()).toString());
                }
                out.flush();
            }
        }
        out.flush();
        if (!complete(wanted, seen)) {
            System.err.println("java read: timed out with " + seen + " of " + wanted);
            return 3;
        }
        return 0;
    }

    static void readAll(JavaClient.Args args) throws Exception {
        String topic = args.required("topic");
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(Long.parseLong(args.get("timeout-ms", "60000")));
        Writer out = JavaClient.stdout();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(
                consumerConfig(args.required("bootstrap"), args.required("isolation"), null))) {
            List<TopicPartition> partitions = new ArrayList<>();
            for (PartitionInfo p : consumer.partitionsFor(topic, Duration.ofSeconds(30))) {
                partitions.add(new TopicPartition(topic, p.partition()));
            }
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> ends = consumer.endOffsets(partitions);
            while (!atEnd(consumer, ends)) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("read-all: not at the end offsets " + ends + " in time");
                }
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    java.io.StringWriter line = new java.io.StringWriter();
                    JavaClient.writeRecord(line, r);
                    StringBuilder s = new StringBuilder("{\"topic\":");
                    JavaClient.Json.string(s, r.topic());
                    out.write(s.append(',').append(line.toString(), 1, line.toString().length()).toString());
                }
                out.flush();
            }
        }
        out.flush();
    }

    private static boolean atEnd(KafkaConsumer<byte[], byte[]> consumer, Map<TopicPartition, Long> ends) {
        for (Map.Entry<TopicPartition, Long> e : ends.entrySet()) {
            if (consumer.position(e.getKey()) < e.getValue()) {
                return false;
            }
        }
        return true;
    }

    private static boolean complete(Map<TopicPartition, Integer> wanted, Map<TopicPartition, Integer> seen) {
        for (Map.Entry<TopicPartition, Integer> e : wanted.entrySet()) {
            if (seen.getOrDefault(e.getKey(), 0) < e.getValue()) {
                return false;
            }
        }
        return true;
    }

    // ---- ctp ---------------------------------------------------------------------------------

    static void consumeTransformProduce(JavaClient.Args args) throws Exception {
        String input = args.required("input");
        String output = args.required("output");
        String group = args.required("group");
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(Long.parseLong(args.get("timeout-ms", "600000")));
        Writer out = JavaClient.stdout();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(
                consumerConfig(args.required("bootstrap"), "read_committed", group))) {
            List<TopicPartition> partitions = new ArrayList<>();
            for (PartitionInfo p : consumer.partitionsFor(input, Duration.ofSeconds(30))) {
                partitions.add(new TopicPartition(input, p.partition()));
            }
            consumer.assign(partitions);
            Map<TopicPartition, Long> ends = consumer.endOffsets(partitions);
            ConsumerGroupMetadata groupMetadata = new ConsumerGroupMetadata(group);
            KafkaProducer<byte[], byte[]> producer = null;
            Map<TopicPartition, Long> committed = null;
            try {
                while (committed == null || !reached(committed, ends)) {
                    if (System.nanoTime() > deadline) {
                        throw new IllegalStateException("ctp: committed " + committed + " of " + ends + " in time");
                    }
                    try {
                        if (producer == null) {
                            producer = producer(args);
                            producer.initTransactions();
                            committed = rewind(consumer, partitions);
                            event(out, "committed", total(committed));
                            continue;
                        }
                        ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(200));
                        if (records.isEmpty()) {
                            continue;
                        }
                        producer.beginTransaction();
                        for (ConsumerRecord<byte[], byte[]> r : records) {
                            producer.send(new ProducerRecord<>(output, r.partition(), r.key(), transform(r.value())));
                        }
                        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                        for (TopicPartition tp : records.partitions()) {
                            List<ConsumerRecord<byte[], byte[]>> of = records.records(tp);
                            offsets.put(tp, new OffsetAndMetadata(of.get(of.size() - 1).offset() + 1));
                        }
                        producer.sendOffsetsToTransaction(offsets, groupMetadata);
                        producer.commitTransaction();
                        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : offsets.entrySet()) {
                            committed.put(e.getKey(), e.getValue().offset());
                        }
                        event(out, "committed", total(committed));
                    } catch (Exception e) {
                        // Whatever the old producer left is completed or aborted by the
                        // next one's initTransactions; what counts is what the group
                        // committed, read back after that.
                        event(out, "recovering", e.getClass().getSimpleName() + ": " + e.getMessage());
                        if (producer != null) {
                            producer.close(Duration.ZERO);
                            producer = null;
                        }
                    }
                }
            } finally {
                if (producer != null) {
                    producer.close(Duration.ofSeconds(10));
                }
            }
            event(out, "done", total(committed));
        }
    }

    /** Seek every partition to the group's committed offset (its beginning if none). */
    private static Map<TopicPartition, Long> rewind(KafkaConsumer<byte[], byte[]> consumer, List<TopicPartition> partitions) {
        Map<TopicPartition, OffsetAndMetadata> stored = consumer.committed(new java.util.HashSet<>(partitions));
        Map<TopicPartition, Long> positions = new HashMap<>();
        List<TopicPartition> none = new ArrayList<>();
        for (TopicPartition tp : partitions) {
            OffsetAndMetadata o = stored.get(tp);
            if (o == null) {
                none.add(tp);
                positions.put(tp, 0L);
            } else {
                consumer.seek(tp, o.offset());
                positions.put(tp, o.offset());
            }
        }
        consumer.seekToBeginning(none);
        return positions;
    }

    private static boolean reached(Map<TopicPartition, Long> committed, Map<TopicPartition, Long> ends) {
        for (Map.Entry<TopicPartition, Long> e : ends.entrySet()) {
            if (committed.getOrDefault(e.getKey(), 0L) < e.getValue()) {
                return false;
            }
        }
        return true;
    }

    private static long total(Map<TopicPartition, Long> offsets) {
        long sum = 0;
        for (long o : offsets.values()) {
            sum += o;
        }
        return sum;
    }

    static byte[] transform(byte[] value) {
        byte[] out = new byte[value.length + 2];
        out[0] = 't';
        out[1] = ':';
        System.arraycopy(value, 0, out, 2, value.length);
        return out;
    }

    private static void event(Writer out, String name, Object value) throws java.io.IOException {
        StringBuilder s = new StringBuilder("{");
        JavaClient.Json.string(s, name);
        s.append(':');
        JavaClient.Json.write(s, value);
        out.write(s.append("}\n").toString());
        out.flush();
    }
}
