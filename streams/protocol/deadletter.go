package protocol

import (
	"cmp"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Source is where a record was read: what a dead letter's sl-source says.
type Source struct {
	Topic     string
	Partition int32
	Offset    int64
}

// String is the sl-source form, "topic/partition/offset".
func (s Source) String() string {
	return s.Topic + "/" + strconv.FormatInt(int64(s.Partition), 10) + "/" + strconv.FormatInt(s.Offset, 10)
}

// ParseSource reads "topic/partition/offset"; the topic is everything
// before the last two '/'.
func ParseSource(v []byte) (Source, error) {
	bad := badHeader(HeaderSource, v, "topic/partition/offset")
	s := string(v)
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return Source{}, bad
	}
	j := strings.LastIndexByte(s[:i], '/')
	if j <= 0 {
		return Source{}, bad
	}
	p, err := parseCount(HeaderSource, []byte(s[j+1:i]))
	if err != nil || p > 1<<31-1 {
		return Source{}, bad
	}
	off, err := parseCount(HeaderSource, []byte(s[i+1:]))
	if err != nil {
		return Source{}, bad
	}
	return Source{Topic: s[:j], Partition: int32(p), Offset: off}, nil
}

// DeadLetter is a failed record nobody waits for, on the application's
// dead-letter topic: the record as it was read, with why and where it
// failed.
type DeadLetter struct {
	Topic      string // the application's dead-letter topic
	Key        []byte
	Value      []byte
	Headers    []kgo.RecordHeader // the failed record's, less any earlier failure's
	Status     Code
	Error      string
	Source     Source
	Deployment string
}

// NewDeadLetter is the dead letter of rec, failed at deployment: its key,
// value and headers, less any earlier failure's (a dead letter replayed
// and failed again carries only its latest failure). An empty code is
// internal.
func NewDeadLetter(topic string, rec *kgo.Record, deployment string, code Code, msg string) DeadLetter {
	return DeadLetter{
		Topic:      topic,
		Key:        rec.Key,
		Value:      rec.Value,
		Headers:    withoutFailure(rec.Headers),
		Status:     cmp.Or(code, CodeInternal),
		Error:      msg,
		Source:     Source{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset},
		Deployment: deployment,
	}
}

// Record encodes the dead letter: the record's headers, then sl-status,
// sl-error, sl-source and sl-deployment.
func (d *DeadLetter) Record() *kgo.Record {
	hs := withoutFailure(d.Headers)
	hs = append(hs[:len(hs):len(hs)],
		header(HeaderStatus, string(d.Status)),
		header(HeaderError, d.Error),
		header(HeaderSource, d.Source.String()),
		header(HeaderDeployment, d.Deployment),
	)
	return &kgo.Record{Topic: d.Topic, Key: d.Key, Value: d.Value, Headers: hs}
}

// ParseDeadLetter decodes a dead letter. It fails without an sl-status
// or with an sl-source that is not topic/partition/offset; every header
// that is not one of the four failure headers is the failed record's.
func ParseDeadLetter(rec *kgo.Record) (DeadLetter, error) {
	d := DeadLetter{Topic: rec.Topic, Key: rec.Key, Value: rec.Value, Headers: withoutFailure(rec.Headers)}
	var source []byte
	for _, h := range rec.Headers {
		switch h.Key {
		case HeaderStatus:
			d.Status = Code(h.Value)
		case HeaderError:
			d.Error = string(h.Value)
		case HeaderSource:
			source = h.Value
		case HeaderDeployment:
			d.Deployment = string(h.Value)
		}
	}
	if d.Status == CodeOK {
		return d, missingHeader(HeaderStatus, "a dead letter")
	}
	if source == nil {
		return d, missingHeader(HeaderSource, "a dead letter")
	}
	src, err := ParseSource(source)
	d.Source = src
	return d, err
}

// withoutFailure is hs less the failure headers of a dead letter, in a
// new slice.
func withoutFailure(hs []kgo.RecordHeader) []kgo.RecordHeader {
	out := make([]kgo.RecordHeader, 0, len(hs)+4)
	for _, h := range hs {
		switch h.Key {
		case HeaderStatus, HeaderError, HeaderSource, HeaderDeployment:
		default:
			out = append(out, h)
		}
	}
	return out
}
