// Package models serves registry models inside a replica: it pulls a
// version's artifact when a request first needs it, loads it with a
// runtime, keeps the most recently used models loaded, and evicts the
// rest.
package models

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/sluice-serve/sluice/gateway/oip"
	"github.com/sluice-serve/sluice/registry"
)

// Runtime loads models of one format. Adding a runtime (ONNX Runtime, an
// external process) means implementing these two interfaces; the replica
// loop and the cache do not change.
type Runtime interface {
	// Load loads the version whose artifact was downloaded to dir.
	Load(ctx context.Context, dir string, v *registry.Version) (Loaded, error)
}

// Loaded is a model in memory.
type Loaded interface {
	Infer(ctx context.Context, req *oip.InferRequest) (*oip.InferResponse, error)
	// Close unloads the model and frees its memory.
	Close() error
}

// Sizer is implemented by loaded models that know their memory footprint;
// the cache's memory budget counts it (else the artifact's size).
type Sizer interface {
	MemoryBytes() int64
}

// Runtimes maps artifact formats to runtimes.
type Runtimes map[string]Runtime

// For returns the runtime of a format, or an error listing the known ones.
func (rs Runtimes) For(format string) (Runtime, error) {
	if r, ok := rs[format]; ok {
		return r, nil
	}
	known := make([]string, 0, len(rs))
	for f := range rs {
		known = append(known, f)
	}
	sort.Strings(known)
	return nil, fmt.Errorf("no runtime for format %q (this replica has %s)", format, strings.Join(known, ", "))
}
