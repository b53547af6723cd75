// IBM/sarama for the kafka-compat interop tests; interop/sarama_client.py
// drives it, one whole command per run.
//
//	sarama produce --bootstrap H:P --topic T [--producer sync|async]
//	     [--partition N|any] [--acks 0|1|all] [--compression none|gzip|snappy|lz4|zstd]
//	     [--idempotent] [--kafka-version V] [--timeout-ms MS] < messages.jsonl
//	  stdin: {"key", "value", "headers": [[name, value]], "timestamp"} per line,
//	  bytes in base64, null for null (a null timestamp: the client stamps it).
//	  sync: SyncProducer.SendMessages of them all; async: every message into
//	  AsyncProducer.Input(), acknowledgements read from Successes() and
//	  Errors(). stdout, once every message was acknowledged: {"partition",
//	  "offset"} per message in input order (offset -1 with acks=0).
//	  --partition any: sarama's default (hash) partitioner chooses.
//
//	sarama consume --bootstrap H:P --topic T --count N
//	     [--partition P] [--offset O | --from beginning|end]
//	     [--group G [--commit]] [--timeout-ms MS]
//	  without --group: Consumer.ConsumePartition from that offset; with
//	  --group: a ConsumerGroup member from the oldest offset (marking every
//	  record, committing at the end with --commit). stdout: one record per
//	  line, the produce encoding plus partition and offset (sarama does not
//	  say which timestamp type a record has: timestamp_type is null).
//	  Exits 3 when fewer than N records arrived in time (those are printed).
//
//	sarama group --bootstrap H:P --topic T --group G --name N [--instance-id ID]
//	     [--assignor range|roundrobin|sticky|cooperative-sticky]
//	     [--session-timeout-ms MS] [--heartbeat-interval-ms MS]
//	  a ConsumerGroup member speaking interop/group_worker.py's protocol. Each
//	  claim is reported as it starts ("assigned", incremental) and ends
//	  ("revoked", incremental), whatever the rebalance protocol; what a claim
//	  read is committed (session.Commit) before it reads more. "stop" or the
//	  end of stdin closes the group (leaving it unless static).
//
// The sarama version flag (--kafka-version, default 3.9.0) is the protocol
// level sarama speaks, as applications configure Config.Version.
// Errors: a message on stderr and exit status 1 (2 for bad usage).
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"kafka-compat/interop/go/internal/jsonl"
)

func main() {
	if len(os.Args) < 2 {
		jsonl.Usage("sarama produce|consume|group --bootstrap H:P ...")
	}
	if os.Getenv("INTEROP_GO_LOG") != "" {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.LstdFlags|log.Lmicroseconds)
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
		jsonl.Usage("unknown command %s", command)
	}
	if err != nil {
		jsonl.Fail("sarama "+command, err)
	}
}

func config(a jsonl.Args) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "interop-sarama"
	version, err := sarama.ParseKafkaVersion(a.Get("kafka-version", "3.9.0"))
	if err != nil {
		jsonl.Usage("--kafka-version: %v", err)
	}
	cfg.Version = version
	cfg.Net.ReadTimeout = 15 * time.Second
	cfg.Net.WriteTimeout = 15 * time.Second
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	return cfg
}

func brokers(a jsonl.Args) []string { return strings.Split(a.Required("bootstrap"), ",") }

// ---- produce ----------------------------------------------------------------------------

func produce(a jsonl.Args) error {
	topic := a.Required("topic")
	timeout := a.Millis("timeout-ms", 60000)
	cfg := config(a)
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Timeout = 15 * time.Second
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond // linger, as the other clients' 5 ms
	switch c := a.Get("compression", "none"); c {
	case "none":
		cfg.Producer.Compression = sarama.CompressionNone
	case "gzip":
		cfg.Producer.Compression = sarama.CompressionGZIP
	case "snappy":
		cfg.Producer.Compression = sarama.CompressionSnappy
	case "lz4":
		cfg.Producer.Compression = sarama.CompressionLZ4
	case "zstd":
		cfg.Producer.Compression = sarama.CompressionZSTD
	default:
		jsonl.Usage("unknown compression %s", c)
	}
	acks := a.Get("acks", "all")
	switch acks {
	case "all", "-1":
		cfg.Producer.RequiredAcks = sarama.WaitForAll
	case "1":
		cfg.Producer.RequiredAcks = sarama.WaitForLocal
	case "0":
		cfg.Producer.RequiredAcks = sarama.NoResponse
	default:
		jsonl.Usage("--acks 0|1|all, not %s", acks)
	}
	if a.Flag("idempotent") {
		cfg.Producer.Idempotent = true
		cfg.Net.MaxOpenRequests = 1 // sarama requires it of an idempotent producer
	}
	partition := int32(-1)
	if p := a.Get("partition", "0"); p != "any" {
		n, err := strconv.Atoi(p)
		if err != nil {
			jsonl.Usage("--partition N|any, not %s", p)
		}
		partition = int32(n)
		cfg.Producer.Partitioner = sarama.NewManualPartitioner
	}

	messages, err := jsonl.ReadMessages(os.Stdin)
	if err != nil {
		return err
	}
	msgs := make([]*sarama.ProducerMessage, len(messages))
	for i, m := range messages {
		pm := &sarama.ProducerMessage{Topic: topic, Partition: partition, Metadata: i}
		// A nil Encoder is a null key or value; ByteEncoder([]byte{}) an empty one.
		if m.Key != nil {
			pm.Key = sarama.ByteEncoder(m.Key)
		}
		if m.Value != nil {
			pm.Value = sarama.ByteEncoder(m.Value)
		}
		for _, h := range m.Headers {
			pm.Headers = append(pm.Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
		}
		if m.Timestamp != nil {
			pm.Timestamp = jsonl.Time(*m.Timestamp)
		}
		msgs[i] = pm
	}

	switch mode := a.Get("producer", "sync"); mode {
	case "sync":
		err = produceSync(brokers(a), cfg, msgs)
	case "async":
		err = produceAsync(brokers(a), cfg, msgs, timeout)
	default:
		jsonl.Usage("--producer sync|async, not %s", mode)
	}
	if err != nil {
		return err
	}
	out := jsonl.NewOutput()
	for _, m := range msgs {
		offset := m.Offset
		if acks == "0" {
			offset = -1 // not known without an answer
		}
		out.Acked(m.Partition, offset)
	}
	out.Flush()
	return nil
}

func produceSync(addrs []string, cfg *sarama.Config, msgs []*sarama.ProducerMessage) error {
	producer, err := sarama.NewSyncProducer(addrs, cfg)
	if err != nil {
		return err
	}
	err = producer.SendMessages(msgs)
	if cerr := producer.Close(); err == nil {
		err = cerr
	}
	var perrs sarama.ProducerErrors
	if errors.As(err, &perrs) && len(perrs) > 0 {
		return fmt.Errorf("%d messages failed, message %v: %w", len(perrs), perrs[0].Msg.Metadata, perrs[0].Err)
	}
	return err
}

func produceAsync(addrs []string, cfg *sarama.Config, msgs []*sarama.ProducerMessage, timeout time.Duration) error {
	producer, err := sarama.NewAsyncProducer(addrs, cfg)
	if err != nil {
		return err
	}
	go func() {
		for _, m := range msgs {
			producer.Input() <- m
		}
	}()
	var firstErr error
	deadline := time.After(timeout)
	for done := 0; done < len(msgs); done++ {
		select {
		case <-producer.Successes():
		case perr := <-producer.Errors():
			if firstErr == nil {
				firstErr = fmt.Errorf("message %v: %w", perr.Msg.Metadata, perr.Err)
			}
		case <-deadline:
			producer.AsyncClose()
			return fmt.Errorf("%d of %d messages unacknowledged after %v", len(msgs)-done, len(msgs), timeout)
		}
	}
	if err := producer.Close(); err != nil && firstErr == nil {
		firstErr = err
	}
	return firstErr
}

// ---- consume ----------------------------------------------------------------------------

func toRecord(m *sarama.ConsumerMessage) jsonl.Record {
	r := jsonl.Record{Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value,
		Timestamp: jsonl.Millis(m.Timestamp)}
	for _, h := range m.Headers {
		r.Headers = append(r.Headers, jsonl.Header{Key: string(h.Key), Value: h.Value})
	}
	return r
}

func consumerConfig(a jsonl.Args) *sarama.Config {
	cfg := config(a)
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.MaxWaitTime = 100 * time.Millisecond
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	return cfg
}

func consume(a jsonl.Args) (int, error) {
	topic := a.Required("topic")
	count := a.Int("count", 0)
	deadline := time.After(a.Millis("timeout-ms", 60000))
	cfg := consumerConfig(a)
	out := jsonl.NewOutput()
	defer out.Flush()
	seen := 0

	if g := a.Get("group", ""); g != "" {
		return consumeGroup(a, cfg, g, topic, count, deadline, out)
	}
	var offset int64
	switch from := a.Get("from", ""); from {
	case "beginning":
		offset = sarama.OffsetOldest
	case "end":
		offset = sarama.OffsetNewest
	case "":
		offset = int64(a.Int("offset", 0))
	default:
		jsonl.Usage("--from beginning|end, not %s", from)
	}
	consumer, err := sarama.NewConsumer(brokers(a), cfg)
	if err != nil {
		return 1, err
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, int32(a.Int("partition", 0)), offset)
	if err != nil {
		return 1, err
	}
	defer pc.Close()
	for seen < count {
		select {
		case m := <-pc.Messages():
			seen++
			out.Record(toRecord(m))
		case e := <-pc.Errors():
			fmt.Fprintf(os.Stderr, "consumer error: %v\n", e)
		case <-deadline:
			fmt.Fprintf(os.Stderr, "sarama consume: timed out with %d of %d records\n", seen, count)
			return 3, nil
		}
	}
	return 0, nil
}

// reader is a ConsumerGroupHandler passing every record to one channel.
type reader struct{ records chan *sarama.ConsumerMessage }

func (reader) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (reader) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (r reader) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-c.Messages():
			if !ok {
				return nil
			}
			select {
			case r.records <- m:
				s.MarkMessage(m, "")
			case <-s.Context().Done():
				return nil
			}
		case <-s.Context().Done():
			return nil
		}
	}
}

func consumeGroup(a jsonl.Args, cfg *sarama.Config, groupID, topic string, count int,
	deadline <-chan time.Time, out *jsonl.Output) (int, error) {
	if a.Flag("commit") {
		cfg.Consumer.Offsets.AutoCommit.Enable = true // the final commit on Close
	}
	cg, err := sarama.NewConsumerGroup(brokers(a), groupID, cfg)
	if err != nil {
		return 1, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := reader{records: make(chan *sarama.ConsumerMessage)}
	done := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	seen, code := 0, 0
	for seen < count && code == 0 {
		select {
		case m := <-h.records:
			seen++
			out.Record(toRecord(m))
		case e := <-cg.Errors():
			fmt.Fprintf(os.Stderr, "consumer group error: %v\n", e)
		case err := <-done:
			cancel()
			cg.Close()
			return 1, err
		case <-deadline:
			fmt.Fprintf(os.Stderr, "sarama consume: timed out with %d of %d records\n", seen, count)
			code = 3
		}
	}
	cancel()
	if err := cg.Close(); err != nil {
		return 1, err
	}
	return code, <-done
}

// ---- group member -----------------------------------------------------------------------

// member is a ConsumerGroupHandler reporting interop/group_worker.py's events.
type member struct {
	out   *jsonl.Output
	topic string
}

func (member) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (member) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h member) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	p := c.Partition()
	h.out.Event("assigned", map[string]any{"partitions": []int32{p}, "incremental": true})
	defer h.out.Event("revoked", map[string]any{"partitions": []int32{p}, "incremental": true})
	for {
		var batch []*sarama.ConsumerMessage
		select {
		case m, ok := <-c.Messages():
			if !ok {
				return nil
			}
			batch = append(batch, m)
		case <-s.Context().Done():
			return nil
		}
	more: // whatever else is already there, up to 500
		for len(batch) < 500 {
			select {
			case m, ok := <-c.Messages():
				if !ok {
					break more
				}
				batch = append(batch, m)
			default:
				break more
			}
		}
		pairs := make([][2]int64, 0, len(batch))
		for _, m := range batch {
			pairs = append(pairs, [2]int64{int64(m.Partition), m.Offset})
		}
		h.out.Event("records", map[string]any{"records": pairs})
		last := batch[len(batch)-1]
		s.MarkMessage(last, "")
		// Synchronous; a failure comes out of the group's Errors() (reported
		// there as commit_failed).
		s.Commit()
		h.out.Event("committed", map[string]any{"offsets": map[string]int64{
			strconv.Itoa(int(p)): last.Offset + 1}})
	}
}

func group(a jsonl.Args) error {
	topic := a.Required("topic")
	cfg := consumerConfig(a)
	cfg.Consumer.Group.Session.Timeout = a.Millis("session-timeout-ms", 6000)
	cfg.Consumer.Group.Heartbeat.Interval = a.Millis("heartbeat-interval-ms", 500)
	switch name := a.Get("assignor", "range"); name { // range: sarama's default
	case "range":
		cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	case "roundrobin":
		cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRoundRobin()}
	case "sticky":
		cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategySticky()}
	case "cooperative-sticky":
		cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyCooperativeSticky()}
	default:
		jsonl.Usage("unknown assignor %s", name)
	}
	if id := a.Get("instance-id", ""); id != "" {
		cfg.Consumer.Group.InstanceId = id
	}
	out := jsonl.NewOutput()
	cg, err := sarama.NewConsumerGroup(brokers(a), a.Required("group"), cfg)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for e := range cg.Errors() {
			fmt.Fprintf(os.Stderr, "consumer group error: %v\n", e)
			out.Event("commit_failed", map[string]any{"error": e.Error()})
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	failed := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, member{out, topic}); err != nil && ctx.Err() == nil {
				failed <- err
				return
			}
		}
	}()
	select {
	case <-jsonl.StopRequested():
	case err := <-failed:
		cancel()
		cg.Close()
		return err
	}
	cancel()
	err = cg.Close() // leaves the group (a static member keeps its place)
	wg.Wait()
	if err != nil {
		return err
	}
	out.Event("closed", nil)
	return nil
}
