package streams

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
)

// IDs makes request ids unique across processes without coordination: a
// random 64-bit process prefix and a counter.
type IDs struct {
	prefix string
	n      atomic.Uint64
}

// NewIDs seeds a generator from crypto/rand.
func NewIDs() *IDs {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	return &IDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

// Next returns a fresh id.
func (g *IDs) Next() string {
	n := g.n.Add(1)
	buf := make([]byte, 0, len(g.prefix)+12)
	buf = append(buf, g.prefix...)
	return string(strconv.AppendUint(buf, n, 36))
}

// Instance returns a random name usable as a Namer segment, for reply
// topics of gateways and replica processes.
func Instance() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
