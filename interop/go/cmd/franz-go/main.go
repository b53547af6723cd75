// franz-go (github.com/twmb/franz-go: the kgo client and the kadm admin
// package) for the kafka-compat interop tests; interop/franz_go_client.py
// drives it, one whole command per run.
//
//	franz-go produce --bootstrap H:P --topic T [--partition N|any] [--acks 0|1|all]
//	     [--compression none|gzip|snappy|lz4|zstd] [--idempotent] [--linger-ms MS]
//	     [--timeout-ms MS] < messages.jsonl
//	  stdin: {"key", "value", "headers": [[name, value]], "timestamp"} per line,
//	  bytes in base64, null for null (a null timestamp: the client stamps it).
//	  stdout, once every record was acknowledged: {"partition", "offset"} per
//	  message in input order (offset -1 with acks=0). --partition any: the
//	  default (sticky key) partitioner chooses.
//
//	franz-go consume --bootstrap H:P --topic T --count N
//	     [--partition P] [--offset O | --from beginning|end]
//	     [--group G [--commit]] [--timeout-ms MS]
//	  without --group: ConsumePartitions of one partition from that offset;
//	  with --group: a group member subscribed to T from the earliest offset
//	  (CommitUncommittedOffsets at the end with --commit). stdout: one record
//	  per line, the produce encoding plus partition, offset and timestamp_type.
//	  Exits 3 when fewer than N records arrived in time (those are printed).
//
//	franz-go group --bootstrap H:P --topic T --group G --name N [--instance-id ID]
//	     [--assignor range|roundrobin|sticky|cooperative-sticky]
//	     [--session-timeout-ms MS] [--heartbeat-interval-ms MS]
//	  a group member speaking interop/group_worker.py's protocol (events as
//	  JSON lines; commits what each poll returned before the next rebalance may
//	  run; "stop" or the end of stdin closes the client, leaving the group).
//
//	kadm, one admin call each (stdout: one JSON object):
//	franz-go create-topic --bootstrap H:P --topic T [--partitions N]
//	     [--replication-factor R] [--config name=value]...   {"name", "id"}
//	franz-go delete-topic --bootstrap H:P --topic T          {"ok": true}
//	franz-go list-topics --bootstrap H:P                     {"topic": partitions}
//	franz-go describe-configs --bootstrap H:P --topic T
//	  {"name": {"value", "source", "sensitive"}}
//	franz-go alter-configs --bootstrap H:P --topic T [--set name=value]...
//	     [--delete name]...                                 {"ok": true}
//	franz-go list-offsets --bootstrap H:P --topic T --at start|end|<ms>
//	  {"partition": offset}
//	franz-go commit-offsets --bootstrap H:P --group G --topic T
//	     --offset partition=offset[:metadata]...            {"ok": true}
//	franz-go fetch-offsets --bootstrap H:P --group G
//	  {"topic": {"partition": {"offset", "metadata"}}}
//	franz-go list-groups --bootstrap H:P
//	  {"group": {"state", "protocol_type"}}
//	franz-go describe-groups --bootstrap H:P --group G...
//	  {"group": {"state", "protocol_type", "protocol", "members": [{"member_id",
//	  "instance_id", "client_id", "assigned": {"topic": [partitions]}}]}}
//	franz-go delete-groups --bootstrap H:P --group G...     {"group": error or null}
//	franz-go delete-offsets --bootstrap H:P --group G --topic T --partition P...
//	  {"partition": error or null}
//	franz-go lag --bootstrap H:P --group G
//	  {"state", "lag": {"topic": {"partition": lag}}}
//
// Every command takes --max-version X.Y.Z (kgo.MaxVersions: request versions
// no newer than that Kafka release's).
//
// A failed admin call prints the error on stderr and exits 1, except where
// the output has a field for per-item errors (delete-groups, delete-offsets).
// Bad usage exits 2.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"

	"kafka-compat/interop/go/internal/jsonl"
)

const clientID = "interop-franz-go"

func main() {
	if len(os.Args) < 2 {
		jsonl.Usage("franz-go produce|consume|group|create-topic|delete-topic|list-topics|" +
			"describe-configs|alter-configs|list-offsets|commit-offsets|fetch-offsets|" +
			"list-groups|describe-groups|delete-groups|delete-offsets|lag --bootstrap H:P ...")
	}
	command, argv := os.Args[1], os.Args[2:]
	var err error
	switch command {
	case "produce":
		err = produce(jsonl.Parse(argv, "idempotent"))
	case "consume":
		var code int
		code, err = consume(jsonl.Parse(argv, "commit"))
		if err == nil {
			os.Exit(code)
		}
	case "group":
		err = group(jsonl.Parse(argv))
	default:
		err = adminCommand(command, jsonl.Parse(argv))
	}
	if err != nil {
		jsonl.Fail("franz-go "+command, err)
	}
}

func baseOpts(a jsonl.Args) []kgo.Opt {
	// The client's own log on stderr: warnings and errors unless
	// INTEROP_GO_LOG says debug or info.
	level := kgo.LogLevelWarn
	switch os.Getenv("INTEROP_GO_LOG") {
	case "debug":
		level = kgo.LogLevelDebug
	case "info":
		level = kgo.LogLevelInfo
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(a.Required("bootstrap"), ",")...),
		kgo.ClientID(clientID),
		kgo.RequestTimeoutOverhead(15 * time.Second),
		kgo.WithLogger(kgo.BasicLogger(os.Stderr, level, nil)),
	}
	// --max-version X.Y.Z: no request version newer than that Kafka release's
	// (kgo otherwise takes the newest both sides list in ApiVersions).
	if v := a.Get("max-version", ""); v != "" {
		versions := kversion.FromString(v)
		if versions == nil {
			jsonl.Usage("--max-version: unknown Kafka version %s", v)
		}
		opts = append(opts, kgo.MaxVersions(versions))
	}
	return opts
}

// ---- produce ----------------------------------------------------------------------------

func compression(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "", "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.NoCompression(), fmt.Errorf("unknown compression %q", name)
}

func produce(a jsonl.Args) error {
	topic := a.Required("topic")
	timeout := a.Millis("timeout-ms", 60000)
	codec, err := compression(a.Get("compression", "none"))
	if err != nil {
		return err
	}
	opts := append(baseOpts(a),
		kgo.ProducerBatchCompression(codec),
		kgo.ProducerLinger(a.Millis("linger-ms", 5)),
		// No RecordDeliveryTimeout: kgo measures it from each record's
		// Timestamp, so a record with an explicit timestamp older than the
		// timeout fails before it is sent. The context given to Produce
		// bounds the whole run instead.
	)
	acks := a.Get("acks", "all")
	switch acks {
	case "all", "-1":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
	case "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()))
	default:
		jsonl.Usage("--acks 0|1|all, not %s", acks)
	}
	// kgo is idempotent by default: say which one is meant.
	if !a.Flag("idempotent") {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	partition := int32(-1)
	if p := a.Get("partition", "0"); p != "any" {
		n, err := strconv.Atoi(p)
		if err != nil {
			jsonl.Usage("--partition N|any, not %s", p)
		}
		partition = int32(n)
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}

	messages, err := jsonl.ReadMessages(os.Stdin)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()

	acked := make([]*kgo.Record, len(messages))
	var mu sync.Mutex
	var firstErr error
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for i, m := range messages {
		r := &kgo.Record{Topic: topic, Partition: partition, Key: m.Key, Value: m.Value}
		for _, h := range m.Headers {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		if m.Timestamp != nil {
			r.Timestamp = jsonl.Time(*m.Timestamp)
		}
		index := i
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("message %d: %w", index, err)
			}
			acked[index] = r
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if firstErr != nil {
		return firstErr
	}
	out := jsonl.NewOutput()
	for _, r := range acked {
		offset := r.Offset
		if acks == "0" {
			offset = -1 // no answer, no offset (kgo numbers each batch from 0)
		}
		out.Acked(r.Partition, offset)
	}
	out.Flush()
	return nil
}

// ---- consume ----------------------------------------------------------------------------

func toRecord(r *kgo.Record) jsonl.Record {
	out := jsonl.Record{Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value,
		Timestamp: jsonl.Millis(r.Timestamp)}
	for _, h := range r.Headers {
		out.Headers = append(out.Headers, jsonl.Header{Key: h.Key, Value: h.Value})
	}
	switch r.Attrs.TimestampType() {
	case 0:
		out.TimestampType = "create"
	case 1:
		out.TimestampType = "log_append"
	}
	return out
}

func consume(a jsonl.Args) (int, error) {
	topic := a.Required("topic")
	count := a.Int("count", 0)
	deadline := time.Now().Add(a.Millis("timeout-ms", 60000))
	opts := append(baseOpts(a), kgo.FetchMaxWait(100*time.Millisecond))
	group := a.Get("group", "")
	if group != "" {
		opts = append(opts, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	} else {
		offset := kgo.NewOffset()
		switch from := a.Get("from", ""); from {
		case "beginning":
			offset = offset.AtStart()
		case "end":
			offset = offset.AtEnd()
		case "":
			offset = offset.At(int64(a.Int("offset", 0)))
		default:
			jsonl.Usage("--from beginning|end, not %s", from)
		}
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			topic: {int32(a.Int("partition", 0)): offset}}))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 1, err
	}
	defer cl.Close()

	out := jsonl.NewOutput()
	defer out.Flush()
	seen := 0
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for seen < count && ctx.Err() == nil {
		fetches := cl.PollRecords(ctx, count-seen)
		for _, e := range fetches.Errors() {
			if !errors.Is(e.Err, context.DeadlineExceeded) {
				fmt.Fprintf(os.Stderr, "fetch error on %s[%d]: %v\n", e.Topic, e.Partition, e.Err)
			}
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if seen < count {
				seen++
				out.Record(toRecord(r))
			}
		})
	}
	if group != "" && a.Flag("commit") {
		commitCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cl.CommitUncommittedOffsets(commitCtx); err != nil {
			return 1, err
		}
	}
	if seen < count {
		fmt.Fprintf(os.Stderr, "franz-go consume: timed out with %d of %d records\n", seen, count)
		return 3, nil
	}
	return 0, nil
}

// ---- group member -----------------------------------------------------------------------

func balancer(name string) (kgo.GroupBalancer, bool) {
	switch name {
	case "range":
		return kgo.RangeBalancer(), false
	case "roundrobin":
		return kgo.RoundRobinBalancer(), false
	case "sticky":
		return kgo.StickyBalancer(), false
	case "", "cooperative-sticky": // kgo's default
		return kgo.CooperativeStickyBalancer(), true
	}
	jsonl.Usage("unknown assignor %s", name)
	return nil, false
}

func partitionsOf(topic string, assigned map[string][]int32) []int32 {
	return jsonl.Sorted(assigned[topic])
}

func group(a jsonl.Args) error {
	topic := a.Required("topic")
	out := jsonl.NewOutput()
	bal, cooperative := balancer(a.Get("assignor", ""))
	opts := append(baseOpts(a),
		kgo.ConsumerGroup(a.Required("group")),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.Balancers(bal),
		kgo.SessionTimeout(a.Millis("session-timeout-ms", 6000)),
		kgo.HeartbeatInterval(a.Millis("heartbeat-interval-ms", 500)),
		kgo.DisableAutoCommit(),
		// No rebalance between a poll and the commit of what it returned.
		kgo.BlockRebalanceOnPoll(),
		// kgo calls these with nothing in them too (a cooperative rebalance
		// that moves none of this member's partitions): only changes are events.
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if ps := partitionsOf(topic, m); len(ps) > 0 || !cooperative {
				out.Event("assigned", map[string]any{"partitions": ps, "incremental": cooperative})
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if ps := partitionsOf(topic, m); len(ps) > 0 || !cooperative {
				out.Event("revoked", map[string]any{"partitions": ps, "incremental": cooperative})
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if ps := partitionsOf(topic, m); len(ps) > 0 {
				out.Event("lost", map[string]any{"partitions": ps})
			}
		}),
	)
	if id := a.Get("instance-id", ""); id != "" {
		opts = append(opts, kgo.InstanceID(id))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	stop := jsonl.StopRequested()
	for {
		select {
		case <-stop:
			cl.Close() // leaves the group (a static member keeps its place)
			out.Event("closed", nil)
			return nil
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		fetches := cl.PollRecords(ctx, 500)
		cancel()
		for _, e := range fetches.Errors() {
			if errors.Is(e.Err, kgo.ErrClientClosed) {
				return e.Err
			}
			if !errors.Is(e.Err, context.DeadlineExceeded) {
				fmt.Fprintf(os.Stderr, "fetch error on %s[%d]: %v\n", e.Topic, e.Partition, e.Err)
			}
		}
		records := fetches.Records()
		if len(records) > 0 {
			pairs := make([][2]int64, 0, len(records))
			next := map[string]int64{}
			for _, r := range records {
				pairs = append(pairs, [2]int64{int64(r.Partition), r.Offset})
				next[strconv.Itoa(int(r.Partition))] = r.Offset + 1
			}
			out.Event("records", map[string]any{"records": pairs})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := cl.CommitRecords(ctx, records...)
			cancel()
			if err != nil {
				out.Event("commit_failed", map[string]any{"error": err.Error()})
			} else {
				out.Event("committed", map[string]any{"offsets": next})
			}
		}
		cl.AllowRebalance()
	}
}

// ---- admin (kadm) -----------------------------------------------------------------------

// kafkaUUID is a topic id as Kafka prints it (Uuid.toString: URL-safe base64, no padding).
func kafkaUUID(id kadm.TopicID) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

func errText(err error, message string) any {
	if err == nil {
		return nil
	}
	if message != "" {
		return err.Error() + ": " + message
	}
	return err.Error()
}

func adminCommand(command string, a jsonl.Args) error {
	cl, err := kgo.NewClient(baseOpts(a)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), a.Millis("timeout-ms", 60000))
	defer cancel()
	out := jsonl.NewOutput()
	defer out.Flush()

	switch command {
	case "create-topic":
		configs := map[string]*string{}
		for _, pair := range a.All("config") {
			name, value, ok := strings.Cut(pair, "=")
			if !ok {
				jsonl.Usage("--config name=value, not %s", pair)
			}
			configs[name] = kadm.StringPtr(value)
		}
		topic := a.Required("topic")
		resp, err := adm.CreateTopic(ctx, int32(a.Int("partitions", 1)),
			int16(a.Int("replication-factor", 1)), configs, topic)
		if err != nil {
			return err
		}
		if resp.Err != nil {
			return fmt.Errorf("%v: %s", resp.Err, resp.ErrMessage)
		}
		out.JSON(map[string]any{"name": resp.Topic, "id": kafkaUUID(resp.ID),
			"partitions": resp.NumPartitions, "replication_factor": resp.ReplicationFactor})

	case "delete-topic":
		resp, err := adm.DeleteTopic(ctx, a.Required("topic"))
		if err != nil {
			return err
		}
		if resp.Err != nil {
			return fmt.Errorf("%v: %s", resp.Err, resp.ErrMessage)
		}
		out.JSON(map[string]any{"ok": true})

	case "list-topics":
		topics, err := adm.ListTopics(ctx)
		if err != nil {
			return err
		}
		listed := map[string]int{}
		for name, t := range topics {
			if t.Err != nil {
				return fmt.Errorf("%s: %w", name, t.Err)
			}
			listed[name] = len(t.Partitions)
		}
		out.JSON(listed)

	case "describe-configs":
		configs, err := adm.DescribeTopicConfigs(ctx, a.Required("topic"))
		if err != nil {
			return err
		}
		described := map[string]any{}
		for _, rc := range configs {
			if rc.Err != nil {
				return fmt.Errorf("%v: %s", rc.Err, rc.ErrMessage)
			}
			for _, c := range rc.Configs {
				described[c.Key] = map[string]any{"value": c.Value, "source": c.Source.String(),
					"sensitive": c.Sensitive}
			}
		}
		out.JSON(described)

	case "alter-configs":
		var alters []kadm.AlterConfig
		for _, pair := range a.All("set") {
			name, value, ok := strings.Cut(pair, "=")
			if !ok {
				jsonl.Usage("--set name=value, not %s", pair)
			}
			alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: name, Value: kadm.StringPtr(value)})
		}
		for _, name := range a.All("delete") {
			alters = append(alters, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: name})
		}
		resps, err := adm.AlterTopicConfigs(ctx, alters, a.Required("topic"))
		if err != nil {
			return err
		}
		for _, r := range resps {
			if r.Err != nil {
				return fmt.Errorf("%v: %s", r.Err, r.ErrMessage)
			}
		}
		out.JSON(map[string]any{"ok": true})

	case "list-offsets":
		topic := a.Required("topic")
		var listed kadm.ListedOffsets
		switch at := a.Required("at"); at {
		case "start":
			listed, err = adm.ListStartOffsets(ctx, topic)
		case "end":
			listed, err = adm.ListEndOffsets(ctx, topic)
		default:
			ms, perr := strconv.ParseInt(at, 10, 64)
			if perr != nil {
				jsonl.Usage("--at start|end|<ms>, not %s", at)
			}
			listed, err = adm.ListOffsetsAfterMilli(ctx, ms, topic)
		}
		if err != nil {
			return err
		}
		offsets := map[string]int64{}
		for p, o := range listed[topic] {
			if o.Err != nil {
				return fmt.Errorf("partition %d: %w", p, o.Err)
			}
			offsets[strconv.Itoa(int(p))] = o.Offset
		}
		out.JSON(offsets)

	case "commit-offsets":
		topic := a.Required("topic")
		offsets := kadm.Offsets{}
		for _, spec := range a.All("offset") {
			p, rest, ok := strings.Cut(spec, "=")
			at, metadata, _ := strings.Cut(rest, ":")
			pn, err1 := strconv.Atoi(p)
			an, err2 := strconv.ParseInt(at, 10, 64)
			if !ok || err1 != nil || err2 != nil {
				jsonl.Usage("--offset partition=offset[:metadata], not %s", spec)
			}
			offsets.Add(kadm.Offset{Topic: topic, Partition: int32(pn), At: an, LeaderEpoch: -1, Metadata: metadata})
		}
		resps, err := adm.CommitOffsets(ctx, a.Required("group"), offsets)
		if err != nil {
			return err
		}
		if err := resps.Error(); err != nil {
			return err
		}
		out.JSON(map[string]any{"ok": true})

	case "fetch-offsets":
		resps, err := adm.FetchOffsets(ctx, a.Required("group"))
		if err != nil {
			return err
		}
		fetched := map[string]map[string]any{}
		for topic, ps := range resps {
			fetched[topic] = map[string]any{}
			for p, o := range ps {
				if o.Err != nil {
					return fmt.Errorf("%s[%d]: %w", topic, p, o.Err)
				}
				fetched[topic][strconv.Itoa(int(p))] = map[string]any{"offset": o.At, "metadata": o.Metadata}
			}
		}
		out.JSON(fetched)

	case "list-groups":
		groups, err := adm.ListGroups(ctx)
		if err != nil {
			return err
		}
		listed := map[string]any{}
		for name, g := range groups {
			listed[name] = map[string]any{"state": g.State, "protocol_type": g.ProtocolType}
		}
		out.JSON(listed)

	case "describe-groups":
		groups, err := adm.DescribeGroups(ctx, a.All("group")...)
		if err != nil {
			return err
		}
		described := map[string]any{}
		for name, g := range groups {
			if g.Err != nil {
				return fmt.Errorf("%s: %v %s", name, g.Err, g.ErrMessage)
			}
			members := []any{}
			for _, m := range g.Members {
				assigned := map[string][]int32{}
				if c, ok := m.Assigned.AsConsumer(); ok {
					for _, t := range c.Topics {
						assigned[t.Topic] = jsonl.Sorted(t.Partitions)
					}
				}
				members = append(members, map[string]any{"member_id": m.MemberID,
					"instance_id": m.InstanceID, "client_id": m.ClientID, "assigned": assigned})
			}
			described[name] = map[string]any{"state": g.State, "protocol_type": g.ProtocolType,
				"protocol": g.Protocol, "members": members}
		}
		out.JSON(described)

	case "delete-groups":
		resps, err := adm.DeleteGroups(ctx, a.All("group")...)
		if err != nil {
			return err
		}
		deleted := map[string]any{}
		for name, r := range resps {
			deleted[name] = nil
			if r.Err != nil {
				var kind *kerr.Error
				if errors.As(r.Err, &kind) {
					deleted[name] = kind.Message
				} else {
					deleted[name] = errText(r.Err, r.ErrMessage)
				}
			}
		}
		out.JSON(deleted)

	case "delete-offsets":
		set := kadm.TopicsSet{}
		for _, p := range a.All("partition") {
			n, err := strconv.Atoi(p)
			if err != nil {
				jsonl.Usage("--partition N, not %s", p)
			}
			set.Add(a.Required("topic"), int32(n))
		}
		resps, err := adm.DeleteOffsets(ctx, a.Required("group"), set)
		if err != nil {
			return err
		}
		deleted := map[string]any{}
		for _, ps := range resps {
			for p, err := range ps {
				deleted[strconv.Itoa(int(p))] = nil
				var kind *kerr.Error
				if errors.As(err, &kind) {
					deleted[strconv.Itoa(int(p))] = kind.Message
				} else if err != nil {
					deleted[strconv.Itoa(int(p))] = err.Error()
				}
			}
		}
		out.JSON(deleted)

	case "lag":
		group := a.Required("group")
		lags, err := adm.Lag(ctx, group)
		if err != nil {
			return err
		}
		l := lags[group]
		if err := l.Error(); err != nil {
			return err
		}
		described := map[string]map[string]any{}
		for topic, ps := range l.Lag {
			described[topic] = map[string]any{}
			for p, ml := range ps {
				if ml.Err != nil {
					return fmt.Errorf("%s[%d]: %w", topic, p, ml.Err)
				}
				described[topic][strconv.Itoa(int(p))] = ml.Lag
			}
		}
		out.JSON(map[string]any{"state": l.State, "lag": described})

	default:
		jsonl.Usage("unknown command %s", command)
	}
	return nil
}
