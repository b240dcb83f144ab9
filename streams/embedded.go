package streams

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Embedded is an in-process Kafka broker (franz-go's kfake) for `sluice
// dev` and the fast test tier. It is not a production broker.
type Embedded struct {
	c *kfake.Cluster
}

// StartEmbedded starts a one-broker cluster on 127.0.0.1:port (0 picks a
// free port). A non-empty dataDir keeps topics, offsets and groups on disk
// across restarts.
func StartEmbedded(port int, dataDir string) (*Embedded, error) {
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(port), kfake.ClusterID("sluice-dev")}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(dataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	return &Embedded{c: c}, nil
}

// Brokers returns the seed addresses.
func (e *Embedded) Brokers() []string { return e.c.ListenAddrs() }

// Close stops the broker, flushing its data directory if it has one.
func (e *Embedded) Close() { e.c.Close() }
