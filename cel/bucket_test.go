package cel

import (
	"fmt"
	"hash/fnv"
	"math"
	"testing"
)

// TestBucketPinned pins bucket's values: a change of hash would move
// every user of every split to another bucket, so it must fail here.
func TestBucketPinned(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key  string
		n    int
		want int
	}{
		{"", 10, 7}, // FNV-1a's offset basis, 0xcbf29ce484222325, mod 10
		{"user-1", 100, 8},
		{"user-2", 100, 41},
		{"user-3", 100, 30},
		{"user-48213", 100, 45},
		{"u-1", 10, 4},
		{"ümlaut", 7, 1},
		{"alice@example.com", 1000, 198},
		{"anything", 1, 0},
	}
	for _, tt := range tests {
		if got := Bucket(tt.key, tt.n); got != tt.want {
			t.Errorf("Bucket(%q, %d) = %d, want %d", tt.key, tt.n, got, tt.want)
		}
		rule := fmt.Sprintf("bucket(%q, %d)", tt.key, tt.n)
		if s, err := evalJSON(t, rule, nil); err != nil || s != fmt.Sprint(tt.want) {
			t.Errorf("%s = %s, %v; want %d", rule, s, err, tt.want)
		}
	}
}

// TestBucketIsFNV1a checks the documented definition against the
// standard library's FNV-1a.
func TestBucketIsFNV1a(t *testing.T) {
	t.Parallel()
	for i := range 1000 {
		key := fmt.Sprintf("key-%d-%s", i, string(rune(i)))
		h := fnv.New64a()
		h.Write([]byte(key))
		for _, n := range []int{1, 2, 10, 100, 1000, 1 << 40, math.MaxInt64} {
			want := int(h.Sum64() % uint64(n))
			if got := Bucket(key, n); got != want {
				t.Fatalf("Bucket(%q, %d) = %d, want %d", key, n, got, want)
			}
			rule := fmt.Sprintf("bucket(%q, %d)", key, n)
			if s, err := evalJSON(t, rule, nil); n == 100 && (err != nil || s != fmt.Sprint(want)) {
				t.Fatalf("%s = %s, %v; want %d", rule, s, err, want)
			}
		}
	}
}

// TestBucketUniform puts 100,000 keys into 10 buckets: each gets its
// tenth within 5%.
func TestBucketUniform(t *testing.T) {
	t.Parallel()
	const keys, n = 100_000, 10
	var counts [n]int
	for i := range keys {
		counts[Bucket(fmt.Sprintf("user-%d", i), n)]++
	}
	for b, c := range counts {
		if c < keys/n*95/100 || c > keys/n*105/100 {
			t.Errorf("bucket %d has %d keys, want %d ± 5%% (all: %v)", b, c, keys/n, counts)
		}
	}
}

// TestBucketN rejects n ≤ 0: an error in a rule, a panic in Go.
func TestBucketN(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, -1, math.MinInt64} {
		_, err := evalJSON(t, fmt.Sprintf("bucket(request.id, %d)", n), &Input{ID: "k"})
		wantRuleError(t, err, "bucket: n must be positive")
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Bucket(k, %d) did not panic", n)
				}
			}()
			Bucket("k", n)
		}()
	}
}
