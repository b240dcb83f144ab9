// Package claim carries record values larger than a broker takes through
// an object store: a claim check. A value above the threshold is stored
// under a key of the claims prefix, and the record carries a reference to
// it in its sl-claim header instead (docs/PROTOCOL.md, "Claim checks");
// readers fetch it back, verify its size and SHA-256, and hand the bytes
// on as if they had come in the record.
//
// Values at or under the threshold are left alone: no store access and
// no allocation. A nil *Claims is a process with no store: it claims
// nothing, and explains a record too large for the broker (NoStore).
package claim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams/protocol"
)

// Runtime knobs of claim checks, with their defaults.
const (
	// DefaultThreshold is the largest value a record carries itself: half
	// of the broker's and the producer's default record limit (Kafka's
	// message.max.bytes and franz-go's ProducerBatchMaxBytes, both about
	// 1 MB), leaving room for headers and batch overhead.
	DefaultThreshold = 512 << 10
	// DefaultLimit is the largest value a claim carries: the gateway's
	// default request size limit (gateway.DefaultMaxBody).
	DefaultLimit = 64 << 20
	// DefaultPrefix is where claims live in the store.
	DefaultPrefix = "claims/"
	// BucketWidth is the time a key's bucket spans: a claim's age is told
	// from its key, to this precision, without reading the object.
	BucketWidth = time.Hour
	// DeleteTimeout bounds one delete of a claim that was answered.
	DeleteTimeout = 10 * time.Second
	bucketLayout  = "2006010215"
)

// Store is what claims need of an object store: whole values by key.
// platform/cli adapts a registry/blob.Store to it. Put returns the
// SHA-256 it computed while writing (lower-case hex), or "" when it
// computes none: the claim then hashes the value itself, once. Get and
// Delete wrap ErrNotFound for a missing key (Delete may also return nil),
// and a store that cannot be reached wraps ErrUnavailable.
type Store interface {
	Put(ctx context.Context, key string, value []byte) (sha256Hex string, err error)
	Get(ctx context.Context, key string) ([]byte, error)
	Delete(ctx context.Context, key string) error
}

// Lister is the store capability the sweeper needs: the keys under a
// prefix.
type Lister interface {
	List(ctx context.Context, prefix string) ([]string, error)
}

var (
	// ErrNotFound: the claimed object is not in the store (answered and
	// deleted, expired, or never stored).
	ErrNotFound = errors.New("claimed value not found")
	// ErrUnavailable: the store could not be reached; retry.
	ErrUnavailable = errors.New("claim store unavailable")
	// ErrMismatch: the fetched bytes are not those the reference names.
	ErrMismatch = errors.New("claimed value does not match its reference")
	// ErrMalformed: the sl-claim header cannot be read.
	ErrMalformed = errors.New("malformed claim reference")
	// ErrNoStore: a record carries a claim and this process has no store.
	ErrNoStore = errors.New("no claim store configured")
	// ErrTooLarge: a value is over the payload limit.
	ErrTooLarge = errors.New("payload too large")
)

// Error is a claim that could not be stored or fetched, naming its key.
type Error struct {
	Op  string // "store", "fetch"
	Key string
	Err error
}

func (e *Error) Error() string { return "claim " + e.Key + ": " + e.Op + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// TooLargeError is a value over the payload limit.
type TooLargeError struct {
	Size, Limit int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("payload of %d bytes is over the %d-byte limit", e.Size, e.Limit)
}

// Unwrap makes every TooLargeError match ErrTooLarge.
func (e *TooLargeError) Unwrap() error { return ErrTooLarge }

// NoStore explains err, a produce refused as too large (kerr.MessageTooLarge),
// in a process with no claim store: the size, the record limit, and how
// to configure a store. It wraps err.
func NoStore(size int, err error) error {
	return fmt.Errorf("a record of %d bytes is over the broker's record limit (about 1 MB by default: message.max.bytes, the producer's ProducerBatchMaxBytes) "+
		"and this process has no claim store to carry it: give it a blob store (--s3-endpoint, or --blob-dir) for payloads up to the %d-byte limit: %w",
		size, DefaultLimit, err)
}

// Kind says who deletes a claim, in its key.
type Kind byte

const (
	// KindRequest is a request a caller started (the gateway, a handle
	// call): the caller deletes it once its reply settled.
	KindRequest Kind = 'q'
	// KindReply is a reply: the caller that reads it deletes it.
	KindReply Kind = 'r'
	// KindRecord is a record a replica produced for other replicas or the
	// output topic (an edge, a continuation, an output): the replica that
	// answers it to a waiting caller deletes it; otherwise it expires.
	KindRecord Kind = 'e'
)

// Ref is a reference to a claimed value: its key, size and SHA-256.
type Ref struct {
	Key    string
	Size   int64
	SHA256 [sha256.Size]byte
}

// IsZero reports whether r references nothing.
func (r Ref) IsZero() bool { return r.Key == "" }

// Kind is the kind in r's key, 0 if it has none.
func (r Ref) Kind() Kind {
	_, k, ok := parseKey(r.Key)
	if !ok {
		return 0
	}
	return k
}

// String is the sl-claim header value: "<size> <sha256 hex> <key>".
func (r Ref) String() string {
	return strconv.FormatInt(r.Size, 10) + " " + hex.EncodeToString(r.SHA256[:]) + " " + r.Key
}

// Parse reads an sl-claim header value. The key must be a relative
// slash-separated path without empty, "." or ".." segments, spaces or
// control characters.
func Parse(v []byte) (Ref, error) {
	bad := func(why string) (Ref, error) {
		return Ref{}, fmt.Errorf("%w: %q: %s", ErrMalformed, v, why)
	}
	size, rest, ok := bytes.Cut(v, []byte{' '})
	if !ok {
		return bad("want \"<size> <sha256> <key>\"")
	}
	sum, key, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return bad("want \"<size> <sha256> <key>\"")
	}
	if len(size) == 0 || len(size) > 1 && size[0] == '0' {
		return bad("size is not a count")
	}
	n, err := strconv.ParseInt(string(size), 10, 64)
	if err != nil || size[0] < '0' || size[0] > '9' {
		return bad("size is not a count")
	}
	var r Ref
	if len(sum) != 2*sha256.Size || bytes.ContainsAny(sum, "ABCDEF") {
		return bad("sha256 is not 64 lower-case hex digits")
	}
	if _, err := hex.Decode(r.SHA256[:], sum); err != nil {
		return bad("sha256 is not 64 lower-case hex digits")
	}
	if why := checkKey(key); why != "" {
		return bad("key " + why)
	}
	r.Size, r.Key = n, string(key)
	return r, nil
}

func checkKey(key []byte) string {
	if len(key) == 0 {
		return "is empty"
	}
	for _, c := range key {
		if c <= ' ' || c == 0x7f {
			return "has a space or control character"
		}
	}
	for seg := range bytes.SplitSeq(key, []byte{'/'}) {
		if len(seg) == 0 || string(seg) == "." || string(seg) == ".." {
			return "has an empty, \".\" or \"..\" segment"
		}
	}
	return ""
}

// key layout: <prefix><bucket>/<kind>/<random>, bucket the UTC hour of
// the claim's creation ("2026120607").
func (c *Claims) newKey(kind Kind) string {
	var id [16]byte
	_, _ = rand.Read(id[:])
	return c.prefix + c.now().UTC().Format(bucketLayout) + "/" + string(kind) + "/" + hex.EncodeToString(id[:])
}

// parseKey reads the bucket and kind of a key below the prefix.
func parseKey(rel string) (time.Time, Kind, bool) {
	parts := strings.Split(rel, "/")
	if len(parts) < 3 {
		return time.Time{}, 0, false
	}
	parts = parts[len(parts)-3:]
	t, err := time.Parse(bucketLayout, parts[0])
	if err != nil || len(parts[1]) != 1 {
		return time.Time{}, 0, false
	}
	return t, Kind(parts[1][0]), true
}

// Claims stores and fetches claimed values. A nil *Claims has no store.
type Claims struct {
	store     Store
	threshold int
	limit     int
	prefix    string
	now       func() time.Time
}

// Option configures Claims.
type Option func(*Claims)

// WithThreshold sets the largest value a record carries itself.
func WithThreshold(n int) Option { return func(c *Claims) { c.threshold = n } }

// WithLimit sets the largest value a claim carries.
func WithLimit(n int) Option { return func(c *Claims) { c.limit = n } }

// WithPrefix sets where claims live in the store ("claims/" by default);
// it ends with '/'.
func WithPrefix(p string) Option { return func(c *Claims) { c.prefix = p } }

// WithClock sets the clock keys and the sweeper read (tests).
func WithClock(now func() time.Time) Option { return func(c *Claims) { c.now = now } }

// New returns claims kept in store.
func New(store Store, opts ...Option) (*Claims, error) {
	c := &Claims{store: store, threshold: DefaultThreshold, limit: DefaultLimit, prefix: DefaultPrefix, now: time.Now}
	for _, o := range opts {
		o(c)
	}
	switch {
	case store == nil:
		return nil, errors.New("claims: no store")
	case c.threshold <= 0 || c.limit <= 0:
		return nil, errors.New("claims: threshold and limit must be positive")
	case c.threshold > c.limit:
		return nil, fmt.Errorf("claims: threshold %d is over the limit %d", c.threshold, c.limit)
	case c.prefix == "" || !strings.HasSuffix(c.prefix, "/") || checkKey([]byte(strings.TrimSuffix(c.prefix, "/"))) != "":
		return nil, fmt.Errorf("claims: prefix %q is not a key prefix ending with '/'", c.prefix)
	}
	return c, nil
}

// Threshold is the largest value a record carries itself; 0 for a nil
// Claims (no store: every value goes in its record).
func (c *Claims) Threshold() int {
	if c == nil {
		return 0
	}
	return c.threshold
}

// Limit is the largest value a claim carries; 0 for a nil Claims.
func (c *Claims) Limit() int {
	if c == nil {
		return 0
	}
	return c.limit
}

// Prefix is where claims live in the store.
func (c *Claims) Prefix() string {
	if c == nil {
		return DefaultPrefix
	}
	return c.prefix
}

// Put claims rec's value when it is over the threshold: it stores the
// value under a new key of kind, empties the value, adds the sl-claim
// header and returns the reference. A value at or under the threshold,
// or any value without a store, is left in rec (zero Ref). A value over
// the limit is a *TooLargeError; a store failure an *Error.
func (c *Claims) Put(ctx context.Context, rec *kgo.Record, kind Kind) (Ref, error) {
	if c == nil || len(rec.Value) <= c.threshold {
		return Ref{}, nil
	}
	if len(rec.Value) > c.limit {
		return Ref{}, &TooLargeError{Size: len(rec.Value), Limit: c.limit}
	}
	r := Ref{Key: c.newKey(kind), Size: int64(len(rec.Value))}
	sum, err := c.store.Put(ctx, r.Key, rec.Value)
	if err != nil {
		return Ref{}, &Error{Op: "store", Key: r.Key, Err: err}
	}
	if n, err := hex.Decode(r.SHA256[:], []byte(sum)); err != nil || n != sha256.Size {
		r.SHA256 = sha256.Sum256(rec.Value) // the store computed none
	}
	rec.Value = nil
	rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: protocol.HeaderClaim, Value: []byte(r.String())})
	return r, nil
}

// Find returns the claim reference among hs, if any.
func Find(hs []kgo.RecordHeader) (Ref, bool, error) {
	for i := range hs {
		if hs[i].Key == protocol.HeaderClaim {
			r, err := Parse(hs[i].Value)
			return r, true, err
		}
	}
	return Ref{}, false, nil
}

// Fetch returns the value a record with headers hs carries: value itself
// without a claim (no store access, no allocation), else the claimed
// bytes, verified against the reference's size and SHA-256, with the
// reference. Every failure is an *Error naming the key and the cause
// (ErrNotFound, ErrUnavailable, ErrMismatch, ErrMalformed, ErrNoStore).
func (c *Claims) Fetch(ctx context.Context, hs []kgo.RecordHeader, value []byte) ([]byte, Ref, error) {
	r, found, err := Find(hs)
	switch {
	case !found:
		return value, Ref{}, nil
	case err != nil:
		return nil, Ref{}, &Error{Op: "fetch", Key: "(unreadable)", Err: err}
	case c == nil:
		return nil, r, &Error{Op: "fetch", Key: r.Key, Err: ErrNoStore}
	case !strings.HasPrefix(r.Key, c.prefix):
		return nil, r, &Error{Op: "fetch", Key: r.Key, Err: fmt.Errorf("%w: the key is outside the claims prefix %s", ErrMalformed, c.prefix)}
	case r.Size > int64(c.limit):
		return nil, r, &Error{Op: "fetch", Key: r.Key, Err: &TooLargeError{Size: int(min(r.Size, 1<<62)), Limit: c.limit}}
	}
	b, err := c.store.Get(ctx, r.Key)
	switch {
	case err != nil:
		return nil, r, &Error{Op: "fetch", Key: r.Key, Err: err}
	case int64(len(b)) != r.Size:
		return nil, r, &Error{Op: "fetch", Key: r.Key, Err: fmt.Errorf("%w: %d bytes, the reference says %d", ErrMismatch, len(b), r.Size)}
	case sha256.Sum256(b) != r.SHA256:
		return nil, r, &Error{Op: "fetch", Key: r.Key, Err: fmt.Errorf("%w: SHA-256 differs", ErrMismatch)}
	}
	return b, r, nil
}

// Delete removes a claimed value; a zero Ref, a nil Claims, a key outside
// the prefix and a value already gone are no error.
func (c *Claims) Delete(ctx context.Context, r Ref) error {
	if c == nil || r.IsZero() || !strings.HasPrefix(r.Key, c.prefix) {
		return nil
	}
	if err := c.store.Delete(ctx, r.Key); err != nil && !errors.Is(err, ErrNotFound) {
		return &Error{Op: "delete", Key: r.Key, Err: err}
	}
	return nil
}
