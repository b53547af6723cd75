// A request/answer loop over stdin/stdout for the interactive commands
// (admin-session, consumer-session): one JSON object a line in, {"op": NAME,
// ...}; one line out per request, {"result": ...} or, when the call failed,
// {"error": "ExceptionClassSimpleName", "message": "..."}. An {"op": "close"}
// line or the end of stdin ends the session. So a test keeps one JVM for a
// whole scripted sequence and checks each step's answer as it goes.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.TopicPartition;

final class Session {

    interface Handler {
        Object handle(String op, Map<String, Object> request) throws Exception;
    }

    private Session() {
    }

    static void run(Handler handler) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        Writer out = JavaClient.stdout();
        for (String line; (line = in.readLine()) != null; ) {
            if (line.isBlank()) {
                continue;
            }
            @SuppressWarnings("unchecked")
            Map<String, Object> request = (Map<String, Object>) JavaClient.Json.parse(line);
            String op = (String) request.get("op");
            if ("close".equals(op)) {
                answer(out, Map.of("result", "closed"));
                return;
            }
            Map<String, Object> answer = new LinkedHashMap<>();
            try {
                answer.put("result", handler.handle(op, request));
            } catch (ExecutionException e) {
                answer = error(e.getCause());
            } catch (Exception e) {
                answer = error(e);
            }
            answer(out, answer);
        }
    }

    private static void answer(Writer out, Map<String, Object> answer) throws java.io.IOException {
        StringBuilder s = new StringBuilder();
        JavaClient.Json.write(s, answer);
        out.write(s.append('\n').toString());
        out.flush();
    }

    static Map<String, Object> error(Throwable e) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("error", e.getClass().getSimpleName());
        m.put("message", e.getMessage());
        return m;
    }

    /** null when the future succeeded, else {"error", "message"} (for per-item results). */
    static Object outcome(KafkaFuture<?> future) throws InterruptedException {
        try {
            future.get();
            return null;
        } catch (ExecutionException e) {
            return error(e.getCause());
        }
    }

    // ---- request fields ------------------------------------------------------------------

    static String str(Map<String, Object> m, String name) {
        Object v = m.get(name);
        if (v == null) {
            throw new IllegalArgumentException("missing field " + name);
        }
        return (String) v;
    }

    static long num(Map<String, Object> m, String name) {
        Object v = m.get(name);
        if (v == null) {
            throw new IllegalArgumentException("missing field " + name);
        }
        return ((Number) v).longValue();
    }

    static boolean bool(Map<String, Object> m, String name) {
        return Boolean.TRUE.equals(m.get(name));
    }

    @SuppressWarnings("unchecked")
    static List<Object> list(Map<String, Object> m, String name) {
        Object v = m.get(name);
        return v == null ? List.of() : (List<Object>) v;
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> map(Map<String, Object> m, String name) {
        Object v = m.get(name);
        return v == null ? Map.of() : (Map<String, Object>) v;
    }

    static List<String> strings(Map<String, Object> m, String name) {
        List<String> out = new ArrayList<>();
        for (Object o : list(m, name)) {
            out.add((String) o);
        }
        return out;
    }

    /** [[topic, partition], ...] */
    static List<TopicPartition> partitions(Map<String, Object> m, String name) {
        List<TopicPartition> out = new ArrayList<>();
        for (Object o : list(m, name)) {
            List<?> pair = (List<?>) o;
            out.add(new TopicPartition((String) pair.get(0), ((Number) pair.get(1)).intValue()));
        }
        return out;
    }

    /** "topic:partition", the key of per-partition answers. */
    static String key(TopicPartition tp) {
        return tp.topic() + ":" + tp.partition();
    }
}
