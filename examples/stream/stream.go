// Package stream relays a stream: the Caller yields what the Streamer
// yields, item by item, as it arrives.
package stream

import (
	"context"
	"time"

	"github.com/sluice-serve/sluice/platform/serve"
)

// Streamer yields 0..n-1, one every interval.
type Streamer struct{ interval time.Duration }

// NewStreamer takes the pause between items, as a Go duration string.
func NewStreamer(interval string) (*Streamer, error) {
	d, err := time.ParseDuration(interval)
	if err != nil {
		return nil, err
	}
	return &Streamer{interval: d}, nil
}

// Stream yields the numbers.
func (s *Streamer) Stream(ctx context.Context, n int, send func(int) error) error {
	for i := range n {
		if i > 0 && s.interval > 0 {
			select {
			case <-time.After(s.interval):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := send(i); err != nil {
			return err
		}
	}
	return nil
}

// Caller relays the Streamer's items.
type Caller struct{ streamer *serve.Handle[int, int] }

// NewCaller takes a handle to the Streamer.
func NewCaller(streamer *serve.Handle[int, int]) *Caller { return &Caller{streamer: streamer} }

// Stream relays.
func (c *Caller) Stream(ctx context.Context, n int, send func(int) error) error {
	for v, err := range c.streamer.Stream(ctx, n) {
		if err != nil {
			return err
		}
		if err := send(v); err != nil {
			return err
		}
	}
	return nil
}

// The deployments.
var (
	StreamerDeployment = serve.StreamType[int, int]("Streamer", NewStreamer)
	CallerDeployment   = serve.StreamType[int, int]("Caller", NewCaller)
)

// App is the stream application at /stream.
func App() *serve.Application {
	return serve.MustApp("stream", "/stream", CallerDeployment.Bind(StreamerDeployment.Bind("50ms")))
}
