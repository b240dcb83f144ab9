package streams

import (
	"strconv"
	"strings"
	"time"
)

// Retention bounds how much of a topic a broker keeps, per partition, as
// Kafka's retention.ms and retention.bytes do: records older than Time are
// deleted, and so are the oldest records of a partition holding more than
// Bytes. Zero leaves that bound off.
//
// Retention deletes by time and size only, never by consumption, exactly
// as Kafka does: records that no consumer group has processed yet are
// deleted too when they are old enough or the partition is full. A group
// whose committed offset falls below the log start resumes at the log
// start; the records in between are lost, and the replica's log says so
// ("records deleted by retention before they were consumed", with the
// topic, partition and offset), never silently. The autoscaler's lag
// counts from the log start, so deleted records are no lag.
type Retention struct {
	Time  time.Duration // records older than this are deleted; 0: no bound
	Bytes int64         // per partition; 0: no bound
}

// Runtime knobs of topic retention and of the embedded broker's cleaner.
var (
	// DataRetention is what the platform's data topics (ingress, edges,
	// output, dead letter) keep on any broker: a day, and 1 GiB per
	// partition. A real Kafka broker's defaults are 7 days
	// (log.retention.hours=168) and no size bound
	// (log.retention.bytes=-1).
	DataRetention = Retention{Time: 24 * time.Hour, Bytes: 1 << 30}
	// ReplyRetention is what a reply topic keeps: its records are read at
	// once or never (an hour, 256 MiB).
	ReplyRetention = Retention{Time: time.Hour, Bytes: 256 << 20}
	// EmbeddedRetention is the most the embedded broker keeps of any topic
	// that is not compacted, whatever the topic asks for: what suits a
	// laptop (`sluice dev --retention`, `--retention-bytes`).
	EmbeddedRetention = Retention{Time: 10 * time.Minute, Bytes: 1 << 20}
)

const (
	// EmbeddedCleanInterval is how often the embedded broker applies
	// retention and compacts compacted topics (kfake's
	// log.cleaner.backoff.ms; a real broker checks retention every 5
	// minutes, log.retention.check.interval.ms, and cleans every 15 s).
	EmbeddedCleanInterval = 2 * time.Second
	// embeddedSegmentBytes is the embedded broker's segment size: it frees
	// memory one whole segment at a time, so segments are small.
	embeddedSegmentBytes = 1 << 20
)

// Topic configs that carry retention.
const (
	cfgCleanupPolicy  = "cleanup.policy"
	cfgRetentionMs    = "retention.ms"
	cfgRetentionBytes = "retention.bytes"
	cfgSegmentBytes   = "segment.bytes"
	cfgSegmentMs      = "segment.ms"
)

// configs returns the topic configs of r with segments small enough that a
// real broker, which deletes whole closed segments only, honours both
// bounds within about an eighth of them.
func (r Retention) configs() map[string]*string {
	m := map[string]*string{}
	if r.Time > 0 {
		m[cfgRetentionMs] = ptr(strconv.FormatInt(r.Time.Milliseconds(), 10))
		m[cfgSegmentMs] = ptr(strconv.FormatInt(max(r.Time/8, time.Minute).Milliseconds(), 10))
	}
	if r.Bytes > 0 {
		m[cfgRetentionBytes] = ptr(strconv.FormatInt(r.Bytes, 10))
		m[cfgSegmentBytes] = ptr(strconv.FormatInt(max(r.Bytes/8, 1<<20), 10)) // Kafka's minimum segment is 1 MiB
	}
	return m
}

func ptr(s string) *string { return &s }

// DataTopic is a data topic of an application (an ingress, an edge, the
// output or the dead letter) with DataRetention.
func DataTopic(name string, partitions int32) TopicSpec {
	return TopicSpec{Name: name, Partitions: partitions, Configs: DataRetention.configs()}
}

// compactOnly reports whether a cleanup.policy value compacts without
// deleting (Kafka then ignores retention.ms and retention.bytes).
func compactOnly(policy *string) bool {
	if policy == nil {
		return false
	}
	compact, del := false, false
	for _, p := range strings.Split(*policy, ",") {
		switch strings.TrimSpace(p) {
		case "compact":
			compact = true
		case "delete":
			del = true
		}
	}
	return compact && !del
}
