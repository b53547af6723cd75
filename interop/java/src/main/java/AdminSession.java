// java -jar interop-java-client.jar admin-session --bootstrap H:P
//   One Admin client answering requests on stdin (Session's protocol). Partitions
//   go in as [topic, partition] pairs and come out keyed "topic:partition".
//
//   {"op": "create-partitions", "topic", "count", "validate_only"?}        -> null
//   {"op": "describe-topic", "topic"}                      -> {"partitions": N, "id"}
//   {"op": "describe-configs", "type": "topic"|"broker"|"broker-logger", "name",
//    "names"?: [..]}             -> {config: {"value", "source", "default", "read_only",
//                                              "sensitive", "type"}} (only `names` if given)
//   {"op": "alter-configs", "type", "name", "ops": [["set"|"delete"|"append"|"subtract",
//    config, value]], "validate_only"?}                                       -> null
//   {"op": "delete-records", "offsets": [[topic, partition, before_offset]]}
//                                                          -> {"t:p": low watermark}
//   {"op": "list-offsets", "partitions": [[t, p]], "spec": "earliest"|"latest"|
//    "max-timestamp"|"for-time", "timestamp"?}
//                                   -> {"t:p": {"offset", "timestamp", "leader_epoch"}}
//   {"op": "describe-log-dirs", "brokers": [id]}
//       -> {broker: {path: {"error", "total_bytes", "usable_bytes",
//                           "replicas": {"t:p": {"size", "offset_lag", "future"}}}}}
//   {"op": "list-groups", "states"?: ["Stable", ..]}
//                                     -> [{"group", "state", "type", "simple"}] sorted
//   {"op": "describe-groups", "groups": [..]}
//       -> {group: {"state", "assignor", "simple", "coordinator", "type",
//                   "members": [{"member_id", "instance_id", "client_id", "host",
//                                "assignment": ["t:p", ..]}]}}
//   {"op": "list-group-offsets", "group", "partitions"?: [[t, p]]}
//                          -> {"t:p": {"offset", "metadata", "leader_epoch"} | null}
//   {"op": "alter-group-offsets", "group", "offsets": [[t, p, offset, metadata]]} -> null
//   {"op": "delete-group-offsets", "group", "partitions": [[t, p]]}
//                                                -> {"t:p": null | {"error", "message"}}
//   {"op": "remove-members", "group", "instance_ids"?: [..]}   (none given: all members)
//                                                -> null (all() of the removal)
//   {"op": "delete-groups", "groups": [..]}        -> {group: null | {"error", "message"}}
//   {"op": "describe-cluster"}                                -> {"controller", "nodes"}

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.AlterConfigsOptions;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.CreatePartitionsOptions;
import org.apache.kafka.clients.admin.DeleteConsumerGroupOffsetsResult;
import org.apache.kafka.clients.admin.DeleteConsumerGroupsResult;
import org.apache.kafka.clients.admin.DeletedRecords;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsSpec;
import org.apache.kafka.clients.admin.ListConsumerGroupsOptions;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.MemberToRemove;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.RemoveMembersFromConsumerGroupOptions;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;

final class AdminSession {

    private AdminSession() {
    }

    static void run(JavaClient.Args args) throws Exception {
        try (Admin admin = JavaClient.admin(args)) {
            Session.run((op, m) -> handle(admin, op, m));
        }
    }

    static Object handle(Admin admin, String op, Map<String, Object> m) throws Exception {
        return switch (op) {
            case "create-partitions" -> {
                admin.createPartitions(Map.of(Session.str(m, "topic"),
                                NewPartitions.increaseTo((int) Session.num(m, "count"))),
                        new CreatePartitionsOptions().validateOnly(Session.bool(m, "validate_only"))).all().get();
                yield null;
            }
            case "describe-topic" -> {
                String topic = Session.str(m, "topic");
                TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
                Map<String, Object> out = new LinkedHashMap<>();
                out.put("partitions", d.partitions().size());
                out.put("id", d.topicId().toString());
                yield out;
            }
            case "describe-configs" -> describeConfigs(admin, m);
            case "alter-configs" -> {
                List<AlterConfigOp> ops = new ArrayList<>();
                for (Object o : Session.list(m, "ops")) {
                    List<?> t = (List<?>) o;
                    AlterConfigOp.OpType type = switch ((String) t.get(0)) {
                        case "set" -> AlterConfigOp.OpType.SET;
                        case "delete" -> AlterConfigOp.OpType.DELETE;
                        case "append" -> AlterConfigOp.OpType.APPEND;
                        case "subtract" -> AlterConfigOp.OpType.SUBTRACT;
                        default -> throw new IllegalArgumentException("unknown op type " + t.get(0));
                    };
                    String value = t.size() > 2 ? (String) t.get(2) : null;  // none for delete
                    ops.add(new AlterConfigOp(new ConfigEntry((String) t.get(1), value), type));
                }
                admin.incrementalAlterConfigs(Map.of(resource(m), ops),
                        new AlterConfigsOptions().validateOnly(Session.bool(m, "validate_only"))).all().get();
                yield null;
            }
            case "delete-records" -> {
                Map<TopicPartition, RecordsToDelete> which = new HashMap<>();
                for (Object o : Session.list(m, "offsets")) {
                    List<?> t = (List<?>) o;
                    which.put(new TopicPartition((String) t.get(0), ((Number) t.get(1)).intValue()),
                            RecordsToDelete.beforeOffset(((Number) t.get(2)).longValue()));
                }
                Map<String, Object> out = new TreeMap<>();
                for (Map.Entry<TopicPartition, KafkaFuture<DeletedRecords>> e
                        : admin.deleteRecords(which).lowWatermarks().entrySet()) {
                    out.put(Session.key(e.getKey()), e.getValue().get().lowWatermark());
                }
                yield out;
            }
            case "list-offsets" -> {
                String spec = Session.str(m, "spec");
                OffsetSpec offsetSpec = switch (spec) {
                    case "earliest" -> OffsetSpec.earliest();
                    case "latest" -> OffsetSpec.latest();
                    case "max-timestamp" -> OffsetSpec.maxTimestamp();
                    case "for-time" -> OffsetSpec.forTimestamp(Session.num(m, "timestamp"));
                    default -> throw new IllegalArgumentException("unknown offset spec " + spec);
                };
                Map<TopicPartition, OffsetSpec> which = new HashMap<>();
                for (TopicPartition tp : Session.partitions(m, "partitions")) {
                    which.put(tp, offsetSpec);
                }
                Map<String, Object> out = new TreeMap<>();
                for (Map.Entry<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> e
                        : admin.listOffsets(which).all().get().entrySet()) {
                    Map<String, Object> info = new LinkedHashMap<>();
                    info.put("offset", e.getValue().offset());
                    info.put("timestamp", e.getValue().timestamp());
                    info.put("leader_epoch", e.getValue().leaderEpoch().orElse(null));
                    out.put(Session.key(e.getKey()), info);
                }
                yield out;
            }
            case "describe-log-dirs" -> {
                List<Integer> brokers = new ArrayList<>();
                for (Object o : Session.list(m, "brokers")) {
                    brokers.add(((Number) o).intValue());
                }
                Map<String, Object> out = new TreeMap<>();
                for (Map.Entry<Integer, Map<String, LogDirDescription>> b
                        : admin.describeLogDirs(brokers).allDescriptions().get().entrySet()) {
                    Map<String, Object> dirs = new TreeMap<>();
                    for (Map.Entry<String, LogDirDescription> d : b.getValue().entrySet()) {
                        Map<String, Object> replicas = new TreeMap<>();
                        for (Map.Entry<TopicPartition, ReplicaInfo> r : d.getValue().replicaInfos().entrySet()) {
                            Map<String, Object> info = new LinkedHashMap<>();
                            info.put("size", r.getValue().size());
                            info.put("offset_lag", r.getValue().offsetLag());
                            info.put("future", r.getValue().isFuture());
                            replicas.put(Session.key(r.getKey()), info);
                        }
                        Map<String, Object> dir = new LinkedHashMap<>();
                        dir.put("error", d.getValue().error() == null ? null : Session.error(d.getValue().error()));
                        dir.put("total_bytes", d.getValue().totalBytes().isPresent()
                                ? d.getValue().totalBytes().getAsLong() : null);
                        dir.put("usable_bytes", d.getValue().usableBytes().isPresent()
                                ? d.getValue().usableBytes().getAsLong() : null);
                        dir.put("replicas", replicas);
                        dirs.put(d.getKey(), dir);
                    }
                    out.put(String.valueOf(b.getKey()), dirs);
                }
                yield out;
            }
            case "list-groups" -> {
                ListConsumerGroupsOptions options = new ListConsumerGroupsOptions();
                List<String> states = Session.strings(m, "states");
                if (!states.isEmpty()) {
                    Set<GroupState> wanted = new HashSet<>();
                    for (String s : states) {
                        wanted.add(GroupState.parse(s));
                    }
                    options.inGroupStates(wanted);
                }
                Map<String, Object> sorted = new TreeMap<>();
                for (ConsumerGroupListing g : admin.listConsumerGroups(options).all().get()) {
                    Map<String, Object> gm = new LinkedHashMap<>();
                    gm.put("group", g.groupId());
                    gm.put("state", g.groupState().map(Object::toString).orElse(null));
                    gm.put("type", g.type().map(Object::toString).orElse(null));
                    gm.put("simple", g.isSimpleConsumerGroup());
                    sorted.put(g.groupId(), gm);
                }
                yield new ArrayList<>(sorted.values());
            }
            case "describe-groups" -> {
                Map<String, Object> out = new TreeMap<>();
                for (Map.Entry<String, ConsumerGroupDescription> e
                        : admin.describeConsumerGroups(Session.strings(m, "groups")).all().get().entrySet()) {
                    ConsumerGroupDescription d = e.getValue();
                    List<Object> members = new ArrayList<>();
                    for (MemberDescription md : d.members()) {
                        Map<String, Object> mm = new LinkedHashMap<>();
                        mm.put("member_id", md.consumerId());
                        mm.put("instance_id", md.groupInstanceId().orElse(null));
                        mm.put("client_id", md.clientId());
                        mm.put("host", md.host());
                        List<Object> assigned = new ArrayList<>();
                        for (TopicPartition tp : md.assignment().topicPartitions()) {
                            assigned.add(Session.key(tp));
                        }
                        assigned.sort(null);
                        mm.put("assignment", assigned);
                        members.add(mm);
                    }
                    Map<String, Object> dm = new LinkedHashMap<>();
                    dm.put("state", d.groupState().toString());
                    dm.put("type", d.type().toString());
                    dm.put("assignor", d.partitionAssignor());
                    dm.put("simple", d.isSimpleConsumerGroup());
                    Node coordinator = d.coordinator();
                    dm.put("coordinator", coordinator == null ? null : coordinator.id());
                    dm.put("members", members);
                    out.put(e.getKey(), dm);
                }
                yield out;
            }
            case "list-group-offsets" -> {
                String group = Session.str(m, "group");
                ListConsumerGroupOffsetsSpec spec = new ListConsumerGroupOffsetsSpec();
                if (m.get("partitions") != null) {
                    spec.topicPartitions(Session.partitions(m, "partitions"));
                }
                Map<String, Object> out = new TreeMap<>();
                for (Map.Entry<TopicPartition, OffsetAndMetadata> e : admin.listConsumerGroupOffsets(
                        Map.of(group, spec)).partitionsToOffsetAndMetadata(group).get().entrySet()) {
                    out.put(Session.key(e.getKey()), offsetAndMetadata(e.getValue()));
                }
                yield out;
            }
            case "alter-group-offsets" -> {
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                for (Object o : Session.list(m, "offsets")) {
                    List<?> t = (List<?>) o;
                    offsets.put(new TopicPartition((String) t.get(0), ((Number) t.get(1)).intValue()),
                            new OffsetAndMetadata(((Number) t.get(2)).longValue(),
                                    t.size() > 3 ? (String) t.get(3) : ""));
                }
                admin.alterConsumerGroupOffsets(Session.str(m, "group"), offsets).all().get();
                yield null;
            }
            case "delete-group-offsets" -> {
                Set<TopicPartition> which = new HashSet<>(Session.partitions(m, "partitions"));
                DeleteConsumerGroupOffsetsResult result = admin.deleteConsumerGroupOffsets(
                        Session.str(m, "group"), which);
                // A group-level error fails every partition's future with it.
                Map<String, Object> out = new TreeMap<>();
                for (TopicPartition tp : which) {
                    out.put(Session.key(tp), Session.outcome(result.partitionResult(tp)));
                }
                yield out;
            }
            case "remove-members" -> {
                List<String> ids = Session.strings(m, "instance_ids");
                RemoveMembersFromConsumerGroupOptions options;
                if (ids.isEmpty()) {
                    options = new RemoveMembersFromConsumerGroupOptions();
                } else {
                    List<MemberToRemove> members = new ArrayList<>();
                    for (String id : ids) {
                        members.add(new MemberToRemove(id));
                    }
                    options = new RemoveMembersFromConsumerGroupOptions(members);
                }
                admin.removeMembersFromConsumerGroup(Session.str(m, "group"), options).all().get();
                yield null;
            }
            case "delete-groups" -> {
                DeleteConsumerGroupsResult result = admin.deleteConsumerGroups(Session.strings(m, "groups"));
                Map<String, Object> out = new TreeMap<>();
                for (Map.Entry<String, KafkaFuture<Void>> e : result.deletedGroups().entrySet()) {
                    out.put(e.getKey(), Session.outcome(e.getValue()));
                }
                yield out;
            }
            case "describe-cluster" -> {
                List<Object> nodes = new ArrayList<>();
                for (Node n : admin.describeCluster().nodes().get()) {
                    nodes.add(n.id());
                }
                Map<String, Object> out = new LinkedHashMap<>();
                out.put("controller", admin.describeCluster().controller().get().id());
                out.put("nodes", nodes);
                yield out;
            }
            default -> throw new IllegalArgumentException("unknown op " + op);
        };
    }

    static ConfigResource resource(Map<String, Object> m) {
        String type = Session.str(m, "type");
        ConfigResource.Type t = switch (type) {
            case "topic" -> ConfigResource.Type.TOPIC;
            case "broker" -> ConfigResource.Type.BROKER;
            case "broker-logger" -> ConfigResource.Type.BROKER_LOGGER;
            default -> throw new IllegalArgumentException("unknown resource type " + type);
        };
        return new ConfigResource(t, Session.str(m, "name"));
    }

    static Object describeConfigs(Admin admin, Map<String, Object> m) throws Exception {
        ConfigResource resource = resource(m);
        Config config = admin.describeConfigs(List.of(resource)).all().get().get(resource);
        Collection<String> names = Session.strings(m, "names");
        Map<String, Object> out = new TreeMap<>();
        for (ConfigEntry e : config.entries()) {
            if (!names.isEmpty() && !names.contains(e.name())) {
                continue;
            }
            Map<String, Object> em = new LinkedHashMap<>();
            em.put("value", e.value());
            em.put("source", e.source().toString());
            em.put("default", e.isDefault());
            em.put("read_only", e.isReadOnly());
            em.put("sensitive", e.isSensitive());
            em.put("type", e.type().toString());
            out.put(e.name(), em);
        }
        return out;
    }

    static Object offsetAndMetadata(OffsetAndMetadata o) {
        if (o == null) {
            return null;
        }
        Map<String, Object> om = new LinkedHashMap<>();
        om.put("offset", o.offset());
        om.put("metadata", o.metadata());
        om.put("leader_epoch", o.leaderEpoch().orElse(null));
        return om;
    }
}
