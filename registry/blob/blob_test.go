package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	mib = 1 << 20
	// heapBudget is how far the heap may grow while a 200 MiB object streams
	// through Put: whole-object buffering would blow through it.
	heapBudget = 64 * mib
)

// testStore is the suite every Store implementation passes. The caller must
// not be a parallel test: the first subtest measures the heap and needs the
// process to itself; the rest run in parallel, each under its own keys.
func testStore(t *testing.T, s Store) {
	t.Run("put memory is bounded", func(t *testing.T) {
		// Not parallel: see above.
		for _, size := range []int64{-1, 200 * mib} {
			t.Run(fmt.Sprintf("size=%d", size), func(t *testing.T) {
				checkPutMemory(t, s, fmt.Sprintf("memory/size%d", size), 200*mib, size)
			})
		}
	})
	t.Run("round trip", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name string
			key  string
			len  int64
			size int64 // passed to Put
		}{
			{"empty", "roundtrip/empty", 0, 0},
			{"empty unknown size", "roundtrip/empty-unknown", 0, -1},
			{"one byte", "roundtrip/one", 1, 1},
			{"small unknown size", "roundtrip/small", 1000, -1},
			{"nested key", "roundtrip/a/b/c/d.bin", 4096, 4096},
			{"dots inside segments", "roundtrip/..a/b..c/.d", 10, 10},
			{"spaces and unicode", "roundtrip/wéights v2/ŝhard 1", 10, 10},
			{"multipart unknown size", "roundtrip/multipart-unknown", 17*mib + 3, -1},
			{"multipart exact size", "roundtrip/multipart-exact", 17*mib + 3, 17*mib + 3},
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				ctx := t.Context()
				seed := uint64(100 + i)
				want := sha256Of(t, genData(seed, tc.len))
				info, err := s.Put(ctx, tc.key, genData(seed, tc.len), tc.size)
				if err != nil {
					t.Fatalf("Put: %v", err)
				}
				checkInfo(t, "Put", info, tc.key, tc.len, want)
				st, err := s.Stat(ctx, tc.key)
				if err != nil {
					t.Fatalf("Stat: %v", err)
				}
				checkInfo(t, "Stat", st, tc.key, tc.len, want)
				checkGet(t, s, tc.key, genData(seed, tc.len), tc.len, want)
			})
		}
	})
	t.Run("40 MiB object", func(t *testing.T) {
		t.Parallel()
		const n = 40 * mib
		for _, size := range []int64{-1, n} {
			t.Run(fmt.Sprintf("size=%d", size), func(t *testing.T) {
				t.Parallel()
				ctx := t.Context()
				key := fmt.Sprintf("large/size%d", size)
				seed := uint64(40)
				if size < 0 {
					seed = 41
				}
				want := sha256Of(t, genData(seed, n))
				info, err := s.Put(ctx, key, genData(seed, n), size)
				if err != nil {
					t.Fatalf("Put: %v", err)
				}
				checkInfo(t, "Put", info, key, n, want)
				st, err := s.Stat(ctx, key)
				if err != nil {
					t.Fatalf("Stat: %v", err)
				}
				checkInfo(t, "Stat", st, key, n, want)
				checkGet(t, s, key, genData(seed, n), n, want)
			})
		}
	})
	t.Run("overwrite", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		const key = "overwrite/k"
		mustPut(t, s, key, []byte("first version"))
		second := []byte("second, longer version")
		mustPut(t, s, key, second)
		checkGet(t, s, key, bytes.NewReader(second), int64(len(second)), sha256Hex(second))
		st, err := s.Stat(ctx, key)
		if err != nil {
			t.Fatalf("Stat: %v", err)
		}
		checkInfo(t, "Stat", st, key, int64(len(second)), sha256Hex(second))
	})
	t.Run("not found", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		const key = "notfound/missing"
		if _, _, err := s.Get(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get: err = %v, want ErrNotFound", err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Errorf("Stat: err = %v, want ErrNotFound", err)
		}
		if err := s.Copy(ctx, "notfound/dst", key); !errors.Is(err, ErrNotFound) {
			t.Errorf("Copy: err = %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Errorf("Delete of a missing key: %v", err)
		}
		if _, err := s.Stat(ctx, "notfound/dst"); !errors.Is(err, ErrNotFound) {
			t.Errorf("failed Copy left its destination: Stat err = %v", err)
		}
		infos, err := s.List(ctx, "notfound/")
		if err != nil || len(infos) != 0 {
			t.Errorf("List of an empty prefix = %v, %v; want nothing", infos, err)
		}
		mustPut(t, s, "notfound/file", []byte("x"))
		if _, err := s.Stat(ctx, "notfound/file/below"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Stat below an object: err = %v, want ErrNotFound", err)
		}
		if _, err := s.Stat(ctx, "notfound"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Stat of a key prefix: err = %v, want ErrNotFound", err)
		}
	})
	t.Run("invalid keys", func(t *testing.T) {
		t.Parallel()
		for _, key := range []string{
			"", "/abs", "/", "a//b", "a/", "..", "../x", "a/../b", "a/..", ".", "./a", "a/./b", "a\x00b",
		} {
			t.Run(fmt.Sprintf("%q", key), func(t *testing.T) {
				t.Parallel()
				ctx := t.Context()
				check := func(op string, err error) {
					t.Helper()
					if !errors.Is(err, ErrInvalidKey) {
						t.Errorf("%s: err = %v, want ErrInvalidKey", op, err)
					} else if !strings.Contains(err.Error(), fmt.Sprintf("%q", key)) {
						t.Errorf("%s: error %q does not name the key", op, err)
					}
				}
				_, err := s.Put(ctx, key, strings.NewReader("x"), 1)
				check("Put", err)
				_, _, err = s.Get(ctx, key)
				check("Get", err)
				_, err = s.Stat(ctx, key)
				check("Stat", err)
				check("Delete", s.Delete(ctx, key))
				check("Copy to", s.Copy(ctx, key, "keys/valid"))
				check("Copy from", s.Copy(ctx, "keys/valid", key))
			})
		}
		for _, prefix := range []string{"/abs", "../", "a//", "a/../", "./"} {
			if _, err := s.List(t.Context(), prefix); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("List(%q): err = %v, want ErrInvalidKey", prefix, err)
			}
		}
	})
	t.Run("list", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		keys := []string{"list/b/d/e", "list/a1", "list/b/c", "list/a", "list-sibling/x", "list/a-z"}
		for _, k := range keys {
			mustPut(t, s, k, []byte("data of "+k))
		}
		tests := []struct {
			prefix string
			want   []string
		}{
			{"list/", []string{"list/a", "list/a-z", "list/a1", "list/b/c", "list/b/d/e"}},
			{"list/a", []string{"list/a", "list/a-z", "list/a1"}},
			{"list/b/", []string{"list/b/c", "list/b/d/e"}},
			{"list/b/d/e", []string{"list/b/d/e"}},
			{"list", []string{"list-sibling/x", "list/a", "list/a-z", "list/a1", "list/b/c", "list/b/d/e"}},
			{"list/zzz", nil},
			{"list/a1/", nil},
		}
		for _, tc := range tests {
			infos, err := s.List(ctx, tc.prefix)
			if err != nil {
				t.Fatalf("List(%q): %v", tc.prefix, err)
			}
			var got []string
			for _, info := range infos {
				got = append(got, info.Key)
				data := []byte("data of " + info.Key)
				checkInfo(t, fmt.Sprintf("List(%q)", tc.prefix), info, info.Key, int64(len(data)), sha256Hex(data))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
			}
		}
	})
	t.Run("delete", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		const key = "delete/k"
		mustPut(t, s, key, []byte("doomed"))
		mustPut(t, s, "delete/kept", []byte("kept"))
		for i := range 2 {
			if err := s.Delete(ctx, key); err != nil {
				t.Fatalf("Delete #%d: %v", i+1, err)
			}
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Errorf("Stat after Delete: err = %v, want ErrNotFound", err)
		}
		infos, err := s.List(ctx, "delete/")
		if err != nil || len(infos) != 1 || infos[0].Key != "delete/kept" {
			t.Errorf("List after Delete = %v, %v; want only delete/kept", infos, err)
		}
	})
	t.Run("copy", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		const n = 6*mib + 7
		src, dst := "copy/staging/upload", "copy/final/model.bin"
		want := sha256Of(t, genData(7, n))
		if _, err := s.Put(ctx, src, genData(7, n), n); err != nil {
			t.Fatalf("Put: %v", err)
		}
		mustPut(t, s, dst, []byte("an older object under the destination key"))
		if err := s.Copy(ctx, dst, src); err != nil {
			t.Fatalf("Copy: %v", err)
		}
		st, err := s.Stat(ctx, dst)
		if err != nil {
			t.Fatalf("Stat(dst): %v", err)
		}
		checkInfo(t, "Stat(dst)", st, dst, n, want)
		checkGet(t, s, dst, genData(7, n), n, want)

		// The copy is independent of its source.
		mustPut(t, s, src, []byte("replaced"))
		checkGet(t, s, dst, genData(7, n), n, want)
		if err := s.Delete(ctx, src); err != nil {
			t.Fatalf("Delete(src): %v", err)
		}
		checkGet(t, s, dst, genData(7, n), n, want)

		// Copying onto itself keeps the object.
		if err := s.Copy(ctx, dst, dst); err != nil {
			t.Fatalf("Copy onto itself: %v", err)
		}
		checkGet(t, s, dst, genData(7, n), n, want)
	})
	t.Run("concurrent puts", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		const workers = 16
		var wg sync.WaitGroup
		errs := make([]error, workers)
		for i := range workers {
			wg.Go(func() {
				n := int64(mib + i*1000)
				_, errs[i] = s.Put(ctx, fmt.Sprintf("concurrent/%02d", i), genData(uint64(1000+i), n), n)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("Put: %v", err)
		}
		infos, err := s.List(ctx, "concurrent/")
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(infos) != workers {
			t.Fatalf("List found %d objects, want %d", len(infos), workers)
		}
		for i, info := range infos {
			n := int64(mib + i*1000)
			checkInfo(t, "List", info, fmt.Sprintf("concurrent/%02d", i), n, sha256Of(t, genData(uint64(1000+i), n)))
		}
	})
	t.Run("size mismatch", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name      string
			len, size int64
		}{
			{"short", 50, 100},
			{"long", 100, 50},
			{"long by one", 51, 50},
			{"empty declared", 1, 0},
			{"short multipart", 17 * mib, 20 * mib},
			{"long multipart", 20*mib + 1, 20 * mib},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				ctx := t.Context()
				key := "mismatch/" + strings.ReplaceAll(tc.name, " ", "-")
				old := []byte("previous version")
				mustPut(t, s, key, old)
				_, err := s.Put(ctx, key, genData(3, tc.len), tc.size)
				if !errors.Is(err, ErrSizeMismatch) {
					t.Fatalf("Put of %d bytes declared as %d: err = %v, want ErrSizeMismatch", tc.len, tc.size, err)
				}
				checkGet(t, s, key, bytes.NewReader(old), int64(len(old)), sha256Hex(old))
			})
		}
	})
	t.Run("failing reader", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		const key = "failing/k"
		old := []byte("previous version")
		mustPut(t, s, key, old)
		boom := errors.New("boom")
		for _, size := range []int64{-1, 30 * mib} {
			r := io.MultiReader(genData(5, 20*mib), errReader{boom})
			if _, err := s.Put(ctx, key, r, size); err == nil {
				t.Fatalf("Put (size %d) from a failing reader succeeded", size)
			}
			checkGet(t, s, key, bytes.NewReader(old), int64(len(old)), sha256Hex(old))
		}
	})
	t.Run("canceled context", func(t *testing.T) {
		t.Parallel()
		mustPut(t, s, "canceled/k", []byte("x"))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
				t.Errorf("%s: err = %v, want context.Canceled and not ErrUnavailable", op, err)
			}
		}
		_, err := s.Put(ctx, "canceled/new", genData(1, 20*mib), -1)
		check("Put", err)
		_, _, err = s.Get(ctx, "canceled/k")
		check("Get", err)
		_, err = s.Stat(ctx, "canceled/k")
		check("Stat", err)
		_, err = s.List(ctx, "canceled/")
		check("List", err)
		check("Copy", s.Copy(ctx, "canceled/copy", "canceled/k"))
		check("Delete", s.Delete(ctx, "canceled/k"))
	})
}

// checkPutMemory streams a generated object of n bytes through Put while
// sampling the heap, and fails if it grows by heapBudget or more.
func checkPutMemory(t *testing.T, s Store, key string, n, size int64) {
	t.Helper()
	ctx := t.Context()
	const seed = 200
	want := sha256Of(t, genData(seed, n))

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	stop := make(chan struct{})
	peakc := make(chan uint64)
	go func() {
		peak := before.HeapInuse
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				peakc <- peak
				return
			case <-tick.C:
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
	}()
	start := time.Now()
	info, err := s.Put(ctx, key, genData(seed, n), size)
	elapsed := time.Since(start)
	close(stop)
	peak := <-peakc
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	peak = max(peak, after.HeapInuse)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	growth := int64(peak) - int64(before.HeapInuse)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("Put of %d MiB (size %d) in %s: heap in use %.1f MiB before, peak %.1f MiB (+%.1f MiB); %.1f MiB allocated in all",
		n/mib, size, elapsed.Round(time.Millisecond), float64(before.HeapInuse)/mib, float64(peak)/mib,
		float64(growth)/mib, float64(allocated)/mib)
	if growth >= heapBudget {
		t.Errorf("heap grew by %.1f MiB during Put of a %d MiB stream; want under %d MiB (no whole-object buffering)",
			float64(growth)/mib, n/mib, heapBudget/mib)
	}
	if allocated >= uint64(n) {
		t.Errorf("Put of a %d MiB stream allocated %.1f MiB in all; want less than the object", n/mib, float64(allocated)/mib)
	}
	checkInfo(t, "Put", info, key, n, want)
	rc, got, err := s.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rc.Close()
	if got.SHA256 != want {
		t.Errorf("Get: SHA256 = %s, want %s", got.SHA256, want)
	}
	if sum := sha256Of(t, rc); sum != want {
		t.Errorf("Get streamed bytes with SHA-256 %s, want %s", sum, want)
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Errorf("Delete: %v", err)
	}
}

// genData is n deterministic pseudo-random bytes, generated as they are read.
func genData(seed uint64, n int64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return io.LimitReader(rand.NewChaCha8(s), n)
}

func sha256Of(t testing.TB, r io.Reader) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatalf("hashing: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func mustPut(t *testing.T, s Store, key string, data []byte) {
	t.Helper()
	info, err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	checkInfo(t, "Put", info, key, int64(len(data)), sha256Hex(data))
}

func checkInfo(t *testing.T, op string, got Info, key string, size int64, sha string) {
	t.Helper()
	if got.Key != key || got.Size != size || got.SHA256 != sha {
		t.Errorf("%s: Info{Key: %q, Size: %d, SHA256: %s}, want {%q, %d, %s}", op, got.Key, got.Size, got.SHA256, key, size, sha)
	}
	if got.Modified.IsZero() || time.Since(got.Modified) > time.Hour || time.Until(got.Modified) > time.Minute {
		t.Errorf("%s %q: Modified = %v, want about now", op, key, got.Modified)
	}
}

// checkGet reads key back and compares it with want, chunk by chunk, without
// holding either in memory.
func checkGet(t *testing.T, s Store, key string, want io.Reader, size int64, sha string) {
	t.Helper()
	rc, info, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	checkInfo(t, "Get", info, key, size, sha)
	wantBuf, gotBuf := make([]byte, mib), make([]byte, mib)
	var off int64
	for {
		wn, werr := io.ReadFull(want, wantBuf)
		gn, gerr := io.ReadFull(rc, gotBuf)
		if !bytes.Equal(wantBuf[:wn], gotBuf[:gn]) {
			t.Fatalf("Get(%q): bytes differ in the %d bytes after offset %d (got %d)", key, wn, off, gn)
		}
		off += int64(wn)
		if werr != nil || gerr != nil {
			if (werr == io.EOF || werr == io.ErrUnexpectedEOF) && (gerr == io.EOF || gerr == io.ErrUnexpectedEOF) {
				break
			}
			t.Fatalf("Get(%q) at offset %d: read errors %v (want), %v (got)", key, off, werr, gerr)
		}
	}
	if off != size {
		t.Errorf("Get(%q) read %d bytes, want %d", key, off, size)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestSizedReader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		data     string
		size     int64
		chunk    int // reads of at most chunk bytes; 0: io.ReadAll
		want     string
		mismatch bool
	}{
		{name: "exact", data: "hello", size: 5, want: "hello"},
		{name: "exact in small reads", data: "hello", size: 5, chunk: 2, want: "hello"},
		{name: "unknown size", data: "hello", size: -1, want: "hello"},
		{name: "empty", data: "", size: 0, want: ""},
		{name: "short", data: "hell", size: 5, mismatch: true},
		{name: "long", data: "hello!", size: 5, mismatch: true},
		{name: "long in exact reads", data: "hello!", size: 5, chunk: 5, mismatch: true},
		{name: "long by one, single byte", data: "hi", size: 1, mismatch: true},
		{name: "empty declared", data: "x", size: 0, mismatch: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var r io.Reader = newSizedReader(strings.NewReader(tc.data), tc.size)
			var got []byte
			var err error
			if tc.chunk == 0 {
				got, err = io.ReadAll(r)
			} else {
				// A reader that stops once it has size bytes, the way
				// io.ReadFull into a size-byte buffer does, must still
				// see the mismatch.
				buf := make([]byte, max(tc.size, 0))
				var n int
				n, err = io.ReadFull(r, buf)
				got = buf[:n]
				for err == nil {
					var m int
					m, err = r.Read(make([]byte, tc.chunk))
					if m > 0 {
						t.Fatalf("read %d bytes past size", m)
					}
				}
				if err == io.EOF {
					err = nil
				}
			}
			if tc.mismatch {
				if !errors.Is(err, ErrSizeMismatch) {
					t.Fatalf("err = %v, want ErrSizeMismatch", err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("read %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestValidateKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key   string
		valid bool
	}{
		{"a", true},
		{"models/llama/v1/weights.safetensors", true},
		{"..a/b..", true},
		{"a b/ü", true},
		{"", false},
		{"/a", false},
		{"a/", false},
		{"a//b", false},
		{"..", false},
		{"a/../b", false},
		{"./a", false},
		{"a\x00", false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.key), func(t *testing.T) {
			t.Parallel()
			err := validateKey(tc.key)
			if (err == nil) != tc.valid {
				t.Fatalf("validateKey(%q) = %v, want valid=%t", tc.key, err, tc.valid)
			}
			if err != nil && (!errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.key))) {
				t.Fatalf("validateKey(%q) = %v, want ErrInvalidKey naming the key", tc.key, err)
			}
		})
	}
}
