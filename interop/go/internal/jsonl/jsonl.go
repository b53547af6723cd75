// Package jsonl is what the Go interop programs share: command-line flags,
// messages read from stdin and records written to stdout as JSON lines
// (interop/messages.py's encoding: bytes in base64, null for null), and the
// event protocol of a consumer-group member (interop/group_worker.py).
package jsonl

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Args are "--name value" pairs and bare "--flag"s after the command.
type Args struct {
	values map[string][]string
	flags  map[string]bool
}

// Parse reads argv (without the command); names in `flags` take no value.
func Parse(argv []string, flags ...string) Args {
	a := Args{values: map[string][]string{}, flags: map[string]bool{}}
	isFlag := map[string]bool{}
	for _, f := range flags {
		isFlag[f] = true
	}
	for i := 0; i < len(argv); i++ {
		name, ok := strings.CutPrefix(argv[i], "--")
		if !ok {
			Usage("unexpected argument %q", argv[i])
		}
		if isFlag[name] {
			a.flags[name] = true
			continue
		}
		if i+1 >= len(argv) {
			Usage("--%s needs a value", name)
		}
		a.values[name] = append(a.values[name], argv[i+1])
		i++
	}
	return a
}

func (a Args) Flag(name string) bool { return a.flags[name] }

func (a Args) Get(name, fallback string) string {
	if v := a.values[name]; len(v) > 0 {
		return v[len(v)-1]
	}
	return fallback
}

func (a Args) All(name string) []string { return a.values[name] }

func (a Args) Required(name string) string {
	v := a.Get(name, "")
	if v == "" {
		Usage("--%s is required", name)
	}
	return v
}

func (a Args) Int(name string, fallback int) int {
	v := a.Get(name, "")
	if v == "" {
		return fallback
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		Usage("--%s: %v", name, err)
	}
	return n
}

// Millis is an integer flag in milliseconds.
func (a Args) Millis(name string, fallback int) time.Duration {
	return time.Duration(a.Int(name, fallback)) * time.Millisecond
}

// Usage reports a bad command line (exit status 2).
func Usage(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "usage error: "+format+"\n", args...)
	os.Exit(2)
}

// Fail reports a failed command (exit status 1).
func Fail(command string, err error) {
	fmt.Fprintf(os.Stderr, "%s failed: %v\n", command, err)
	os.Exit(1)
}

// Message is one line of a produce command's stdin.
type Message struct {
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp *int64 // CreateTime in ms; nil lets the client stamp it
}

type Header struct {
	Key   string
	Value []byte
}

type wireMessage struct {
	Key       *string      `json:"key"`
	Value     *string      `json:"value"`
	Headers   [][2]*string `json:"headers"`
	Timestamp *int64       `json:"timestamp"`
}

// ReadMessages reads every message from r, keeping null apart from empty.
func ReadMessages(r io.Reader) ([]Message, error) {
	var out []Message
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 1<<16), 1<<26)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if line == "" {
			continue
		}
		var w wireMessage
		if err := json.Unmarshal([]byte(line), &w); err != nil {
			return nil, fmt.Errorf("message %d: %w", len(out), err)
		}
		m := Message{Timestamp: w.Timestamp, Headers: []Header{}}
		var err error
		if m.Key, err = unb64(w.Key); err != nil {
			return nil, err
		}
		if m.Value, err = unb64(w.Value); err != nil {
			return nil, err
		}
		for _, h := range w.Headers {
			if h[0] == nil {
				return nil, fmt.Errorf("message %d: a header without a name", len(out))
			}
			v, err := unb64(h[1])
			if err != nil {
				return nil, err
			}
			m.Headers = append(m.Headers, Header{*h[0], v})
		}
		out = append(out, m)
	}
	return out, scanner.Err()
}

func unb64(s *string) ([]byte, error) {
	if s == nil {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(*s)
	if b == nil {
		b = []byte{} // empty, not null
	}
	return b, err
}

func b64(b []byte) *string {
	if b == nil {
		return nil
	}
	s := base64.StdEncoding.EncodeToString(b)
	return &s
}

// Record is one line of a consume command's stdout.
type Record struct {
	Partition     int32
	Offset        int64
	Key           []byte
	Value         []byte
	Headers       []Header
	Timestamp     int64
	TimestampType string // "create", "log_append", or "" where the client does not say
}

// Output writes JSON lines to stdout; safe for concurrent use.
type Output struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func NewOutput() *Output { return &Output{w: bufio.NewWriterSize(os.Stdout, 1<<16)} }

func (o *Output) line(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.w.Write(b)
	o.w.WriteByte('\n')
}

// JSON writes one value as a line.
func (o *Output) JSON(v any) { o.line(v) }

// Acked writes one produce acknowledgement.
func (o *Output) Acked(partition int32, offset int64) {
	o.line(map[string]int64{"partition": int64(partition), "offset": offset})
}

// Record writes one consumed record.
func (o *Output) Record(r Record) {
	headers := make([][2]*string, 0, len(r.Headers))
	for _, h := range r.Headers {
		name := h.Key
		headers = append(headers, [2]*string{&name, b64(h.Value)})
	}
	var tsType *string
	if r.TimestampType != "" {
		tsType = &r.TimestampType
	}
	o.line(struct {
		Partition     int32        `json:"partition"`
		Offset        int64        `json:"offset"`
		Key           *string      `json:"key"`
		Value         *string      `json:"value"`
		Headers       [][2]*string `json:"headers"`
		Timestamp     int64        `json:"timestamp"`
		TimestampType *string      `json:"timestamp_type"`
	}{r.Partition, r.Offset, b64(r.Key), b64(r.Value), headers, r.Timestamp, tsType})
}

// Event writes one group-member event and flushes it at once (the test
// watches them as they come).
func (o *Output) Event(event string, fields map[string]any) {
	v := map[string]any{"event": event}
	for k, f := range fields {
		v[k] = f
	}
	o.line(v)
	o.Flush()
}

func (o *Output) Flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.w.Flush()
}

// Sorted returns the partitions in ascending order (never nil, so JSON has []).
func Sorted(partitions []int32) []int32 {
	out := append([]int32{}, partitions...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// StopRequested is closed when stdin says "stop" or ends.
func StopRequested() <-chan struct{} {
	stop := make(chan struct{})
	go func() {
		scanner := bufio.NewScanner(os.Stdin)
		for scanner.Scan() {
			if strings.TrimSpace(scanner.Text()) == "stop" {
				break
			}
		}
		close(stop)
	}()
	return stop
}

// Millis converts a Go time to Kafka's milliseconds.
func Millis(t time.Time) int64 { return t.UnixMilli() }

// Time converts Kafka's milliseconds to a Go time.
func Time(ms int64) time.Time { return time.UnixMilli(ms) }
