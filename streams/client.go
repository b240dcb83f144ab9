package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DialTimeout bounds how long Dial waits for a broker that is down.
const DialTimeout = 10 * time.Second

// saslRefusals is how many times in a row a broker refuses a connection
// in a way that could be a hiccup (a connection closed during SASL, as
// some brokers do on a wrong password, or at once, as a listener that
// wants TLS or SASL does) before Dial takes it for the answer.
const saslRefusals = 3

// ErrNoBroker is returned when no broker answers within the dial bound.
var ErrNoBroker = errors.New("no kafka broker answered")

// Options returns Sluice's client defaults: no linger and no compression
// (latency first), no
// automatic topic creation (the controller creates every topic), franz-go
// logs bridged to slog, one line per change of a broker's reachability
// rather than one per retry (clientLog), and the security Secure
// registered for brokers.
func Options(brokers []string, log *slog.Logger) []kgo.Opt {
	cl := newClientLog(log.With("component", "kgo"))
	return append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.NoCompression()), // payloads are small or already dense tensors
		kgo.WithLogger(cl),
		kgo.WithHooks(cl),
		kgo.FetchMaxWait(2 * time.Second),
		kgo.DialTimeout(3 * time.Second),
	}, securedOf(brokers).opts...)
}

// Dial creates a client and waits, bounded by ctx and DialTimeout, until a
// broker answers, so a broker that is down fails start-up with a clear error
// instead of hanging. Brokers that answer but refuse the connection's
// security fail it with ErrKafkaAuth or ErrKafkaTLS naming the cause: at
// once where retrying cannot help (a refused password, an untrusted
// certificate), else at the bound.
func Dial(ctx context.Context, brokers []string, log *slog.Logger, opts ...kgo.Opt) (*kgo.Client, error) {
	if len(brokers) == 0 {
		return nil, fmt.Errorf("%w: no brokers given", ErrNoBroker)
	}
	cl, err := kgo.NewClient(append(Options(brokers, log), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	if err := ping(ctx, cl, brokers); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}

// DialTransactSession is Dial for a consumer group member that commits
// its offsets with its outputs in transactions: opts name the group and
// a transactional ID (kgo.GroupTransactSession).
func DialTransactSession(ctx context.Context, brokers []string, log *slog.Logger, opts ...kgo.Opt) (*kgo.GroupTransactSession, error) {
	if len(brokers) == 0 {
		return nil, fmt.Errorf("%w: no brokers given", ErrNoBroker)
	}
	s, err := kgo.NewGroupTransactSession(append(Options(brokers, log), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	if err := ping(ctx, s.Client(), brokers); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// ping waits, bounded by ctx and DialTimeout, until a broker answers cl.
// Brokers that answer but refuse the connection's security fail it with
// ErrKafkaAuth or ErrKafkaTLS naming the cause: at once where retrying
// cannot help (a refused password, an untrusted certificate), else at the
// bound. The caller closes cl on an error.
func ping(ctx context.Context, cl *kgo.Client, brokers []string) error {
	sec := SecurityOf(brokers)
	pctx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	var last error
	probed := sec.TLS.On()
	refused := 0 // consecutive refusals that might have been a hiccup
	for {
		err := cl.Ping(pctx)
		if err == nil {
			return nil
		}
		if last == nil || pctx.Err() == nil {
			last = err // the cause, not the bound's own context error
		}
		why, final := explain(last, brokers, sec)
		if why != last { // a refusal explain named: of SASL or TLS
			refused++
		} else {
			refused = 0
		}
		if final || refused >= saslRefusals {
			return why
		}
		if !probed && pctx.Err() == nil {
			probed = true
			if b, ok := probeTLS(pctx, brokers); ok {
				return fmt.Errorf("%w: the broker at %s speaks TLS and this client does not (%s): set --kafka-tls or a CA (--kafka-ca-file): %v", ErrKafkaTLS, b, sec, last)
			}
		}
		select {
		case <-pctx.Done():
			if why != last {
				return fmt.Errorf("%w (within %s)", why, DialTimeout)
			}
			return fmt.Errorf("%w at %s within %s: %v", ErrNoBroker, strings.Join(brokers, ","), DialTimeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TopicSpec is a topic the platform needs.
type TopicSpec struct {
	Name       string
	Partitions int32
	Configs    map[string]*string
}

// CreateTopics creates the topics that do not exist yet (existing ones are
// left as they are) and waits, bounded by ctx and ten seconds, until the
// broker's metadata lists every one with leaders for all its partitions:
// a real broker creates topics asynchronously, and a record produced before
// then fails with UNKNOWN_TOPIC_OR_PARTITION.
func CreateTopics(ctx context.Context, adm *kadm.Client, topics ...TopicSpec) error {
	names := make([]string, 0, len(topics))
	for _, t := range topics {
		res, err := adm.CreateTopic(ctx, t.Partitions, -1, t.Configs, t.Name)
		if err == nil {
			err = res.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t.Name, err)
		}
		names = append(names, t.Name)
	}
	return waitTopics(ctx, adm, names)
}

// WaitTopics waits, at most 10 s, until every topic has a leader for each
// of its partitions (created by someone else).
func WaitTopics(ctx context.Context, adm *kadm.Client, names ...string) error {
	return waitTopics(ctx, adm, names)
}

func waitTopics(ctx context.Context, adm *kadm.Client, names []string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		md, err := adm.Metadata(ctx, names...)
		if err == nil && allLed(md, names) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics %v not ready in the broker's metadata: %w", names, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func allLed(md kadm.Metadata, names []string) bool {
	for _, n := range names {
		td, ok := md.Topics[n]
		if !ok || td.Err != nil || len(td.Partitions) == 0 {
			return false
		}
		for _, p := range td.Partitions {
			if p.Err != nil || p.Leader < 0 {
				return false
			}
		}
	}
	return true
}

// DeleteTopics deletes topics, ignoring those already gone.
func DeleteTopics(ctx context.Context, adm *kadm.Client, topics ...string) error {
	res, err := adm.DeleteTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("delete topics: %w", err)
	}
	for _, r := range res {
		if r.Err != nil && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
			return fmt.Errorf("delete topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// CompactedTopic is a control topic keyed by object name: compacted, so it
// keeps the latest record of every key however old (retention.ms and
// retention.bytes -1: Kafka ignores them on a compacted topic, the embedded
// broker does not). Segments roll hourly so that a real broker, which never
// compacts the active segment, compacts a quiet topic too.
func CompactedTopic(name string) TopicSpec {
	return TopicSpec{Name: name, Partitions: 1, Configs: map[string]*string{
		cfgCleanupPolicy: ptr("compact"), cfgRetentionMs: ptr("-1"), cfgRetentionBytes: ptr("-1"), cfgSegmentMs: ptr("3600000"),
	}}
}

// ReplyTopic is one caller instance's reply topic, with ReplyRetention.
func ReplyTopic(name string) TopicSpec {
	return TopicSpec{Name: name, Partitions: 1, Configs: ReplyRetention.configs()}
}
