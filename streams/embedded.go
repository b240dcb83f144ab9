package streams

import (
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Embedded is an in-process Kafka broker (franz-go's kfake) for `sluice
// dev` and the fast test tier. It is not a production broker.
//
// It is bounded: every EmbeddedCleanInterval it deletes what retention
// allows and compacts the compacted topics. A topic that is not compacted
// keeps at most the broker's Retention (EmbeddedRetention unless
// WithRetention says otherwise), whatever its configs ask for when it is
// created: its retention.ms and retention.bytes are lowered to the bound
// (and set to it where absent), and kept where lower. A topic's configs
// altered later are honoured as they are, as Kafka does. Compacted topics
// (cleanup.policy=compact alone) keep the latest record of each key
// however old: they are created with retention.ms and retention.bytes
// -1, as Kafka ignores both on them and kfake does not.
type Embedded struct {
	c *kfake.Cluster
}

// EmbeddedOpt configures StartEmbedded.
type EmbeddedOpt func(*embeddedCfg)

type embeddedCfg struct {
	retention Retention
	sec       embeddedSecurity
}

// WithRetention sets the most the broker keeps of each partition of a
// topic that is not compacted; a zero field leaves that bound off (topics
// then keep what their configs say; without configs, everything).
func WithRetention(r Retention) EmbeddedOpt {
	return func(c *embeddedCfg) { c.retention = r }
}

// StartEmbedded starts a one-broker cluster on 127.0.0.1:port (0 picks a
// free port). A non-empty dataDir keeps topics, offsets and groups on disk
// across restarts; topics created there before keep the configs they had.
func StartEmbedded(port int, dataDir string, opts ...EmbeddedOpt) (*Embedded, error) {
	cfg := embeddedCfg{retention: EmbeddedRetention}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.retention.Time < 0 || cfg.retention.Bytes < 0 {
		return nil, fmt.Errorf("embedded broker: negative retention %s / %d bytes", cfg.retention.Time, cfg.retention.Bytes)
	}
	segment := int64(embeddedSegmentBytes)
	if b := cfg.retention.Bytes; b > 0 {
		segment = min(segment, max(b/4, 64<<10))
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(1), kfake.Ports(port), kfake.ClusterID("sluice-dev"),
		kfake.BrokerConfigs(map[string]string{
			"log.cleaner.backoff.ms": strconv.FormatInt(EmbeddedCleanInterval.Milliseconds(), 10),
			"log.segment.bytes":      strconv.FormatInt(segment, 10),
			// No broker-wide bound: every bound is a topic config, set
			// when the topic is created (bound below), so describing a
			// topic shows what it keeps, and compacted topics created
			// before (a data dir) are not cut by a broker default.
			"log.retention.ms":    "-1",
			"log.retention.bytes": "-1",
		}),
	}
	if dataDir != "" {
		kopts = append(kopts, kfake.DataDir(dataDir))
	}
	kopts = append(kopts, cfg.sec.opts()...)
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	c.ControlKey(kmsg.CreateTopics.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if r, ok := req.(*kmsg.CreateTopicsRequest); ok {
			for i := range r.Topics {
				r.Topics[i].Configs = cfg.retention.bound(r.Topics[i].Configs, segment)
			}
		}
		return nil, nil, false // the broker goes on to create them
	})
	return &Embedded{c: c}, nil
}

// bound returns the configs of a topic being created, bounded by r: on a
// topic that is not compacted, retention.ms and retention.bytes at most r
// (r's where absent or unlimited) and segments at most segment bytes; on a
// compacted one, retention.ms and retention.bytes -1.
func (r Retention) bound(cfgs []kmsg.CreateTopicsRequestTopicConfig, segment int64) []kmsg.CreateTopicsRequestTopicConfig {
	var policy *string
	for _, c := range cfgs {
		if c.Name == cfgCleanupPolicy {
			policy = c.Value
		}
	}
	set := func(name string, limit int64, lower bool) {
		for i, c := range cfgs {
			if c.Name != name {
				continue
			}
			if !lower {
				cfgs[i].Value = ptr(strconv.FormatInt(limit, 10))
				return
			}
			if c.Value != nil {
				if n, err := strconv.ParseInt(*c.Value, 10, 64); err == nil && n >= 0 && n <= limit {
					return // already within the bound
				}
			}
			cfgs[i].Value = ptr(strconv.FormatInt(limit, 10))
			return
		}
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = name, ptr(strconv.FormatInt(limit, 10))
		cfgs = append(cfgs, c)
	}
	if compactOnly(policy) {
		set(cfgRetentionMs, -1, false)
		set(cfgRetentionBytes, -1, false)
		return cfgs
	}
	if r.Time > 0 {
		set(cfgRetentionMs, r.Time.Milliseconds(), true)
	}
	if r.Bytes > 0 {
		set(cfgRetentionBytes, r.Bytes, true)
	}
	set(cfgSegmentBytes, segment, true)
	return cfgs
}

// Brokers returns the seed addresses.
func (e *Embedded) Brokers() []string { return e.c.ListenAddrs() }

// Close stops the broker, flushing its data directory if it has one.
func (e *Embedded) Close() { e.c.Close() }
