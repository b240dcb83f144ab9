package models

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/gateway/oip"
	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/streams"
)

// memSource is an in-memory registry of linear models; it counts opens.
type memSource struct {
	mu    sync.Mutex
	files map[string][]byte // "model/version/path"
	vers  map[string]*registry.Version
	opens atomic.Int64
	delay time.Duration
	fails []error // returned by the next opens, one each, before the files
}

func newMemSource() *memSource {
	return &memSource{files: map[string][]byte{}, vers: map[string]*registry.Version{}}
}

// add publishes model/version as a linear model y = a*x + b.
func (s *memSource) add(model, version string, a, b float32, format string) {
	body := []byte(fmt.Sprintf(`{"input":"x","output":"y","weights":[[%g]],"bias":[%g]}`, a, b))
	sum := sha256.Sum256(body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[model+"/"+version+"/model.json"] = body
	s.vers[model+"/"+version] = &registry.Version{Model: model, Version: version, Format: format, Size: int64(len(body)),
		Files: []registry.File{{Path: "model.json", Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}}}
}

func (s *memSource) Version(model, version string) (*registry.Version, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.vers[model+"/"+version]; v != nil {
		return v, nil
	}
	return nil, streams.Errorf(streams.CodeNotFound, "no model %s version %s", model, version)
}

func (s *memSource) Open(_ context.Context, v *registry.Version, f registry.File) (io.ReadCloser, error) {
	s.opens.Add(1)
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.fails) > 0 {
		err := s.fails[0]
		s.fails = s.fails[1:]
		return nil, err
	}
	b, ok := s.files[v.Model+"/"+v.Version+"/"+f.Path]
	if !ok {
		return nil, streams.Errorf(streams.CodeNotFound, "file %s is missing from the store", f.Path)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

type panicRuntime struct{}

func (panicRuntime) Load(context.Context, string, *registry.Version) (Loaded, error) {
	panic("native library blew up")
}

func newTestCache(t *testing.T, src Source, max int) *Cache {
	t.Helper()
	return newTestCacheConfig(t, src, Config{Dir: t.TempDir(), MaxModels: max})
}

// newTestCacheConfig is newTestCache with a whole config (Log discards).
func newTestCacheConfig(t *testing.T, src Source, cfg Config) *Cache {
	t.Helper()
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := NewCache(cfg, src, Runtimes{LinearFormat: Linear{}, "boom": panicRuntime{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func infer(t *testing.T, c *Cache, model, version string, x float32) (float32, error) {
	t.Helper()
	m, _, release, err := c.Acquire(context.Background(), model, version)
	if err != nil {
		return 0, err
	}
	defer release()
	resp, err := m.Infer(context.Background(), &oip.InferRequest{Inputs: []oip.Tensor{oip.NewFP32("x", []int64{1, 1}, []float32{x})}})
	if err != nil {
		return 0, err
	}
	ys, err := resp.Outputs[0].Float32s()
	if err != nil {
		return 0, err
	}
	return ys[0], nil
}

func TestOneDownloadUnderConcurrency(t *testing.T) {
	t.Parallel()
	src := newMemSource()
	src.add("m", "1", 2, 1, LinearFormat)
	src.delay = 50 * time.Millisecond
	c := newTestCache(t, src, 3)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if y, err := infer(t, c, "m", "1", 3); err != nil || y != 7 {
				t.Errorf("infer = %v, %v; want 7", y, err)
			}
		})
	}
	wg.Wait()
	if n := src.opens.Load(); n != 1 {
		t.Fatalf("%d downloads for 20 concurrent first requests, want 1", n)
	}
	if s := c.Stats(); s.Loads.Load() != 1 || s.Misses.Load() != 1 || s.Hits.Load() != 19 {
		t.Fatalf("loads %d misses %d hits %d", s.Loads.Load(), s.Misses.Load(), s.Hits.Load())
	}
}

func TestLRUEvictsAndReloads(t *testing.T) {
	t.Parallel()
	src := newMemSource()
	for i := range 4 {
		src.add(fmt.Sprint("m", i), "1", float32(i), 0, LinearFormat)
	}
	c := newTestCache(t, src, 2)
	for _, m := range []string{"m0", "m1", "m0", "m2"} { // m1 is least recent when m2 arrives
		if _, err := infer(t, c, m, "1", 1); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(c.Loaded(), ","); got != "m2/1,m0/1" {
		t.Fatalf("loaded = %s, want m2/1,m0/1 (m1 evicted)", got)
	}
	if c.Stats().Evictions.Load() != 1 {
		t.Fatalf("evictions = %d", c.Stats().Evictions.Load())
	}
	opens := src.opens.Load()
	if y, err := infer(t, c, "m1", "1", 5); err != nil || y != 5 {
		t.Fatalf("reload m1: %v %v", y, err)
	}
	if src.opens.Load() != opens {
		t.Fatal("an evicted model was downloaded again: the disk cache should serve it")
	}
}

// The store loses a cached version's object: the replica still serves it
// from disk; a version never loaded fails with a clear error.
func TestServesFromDiskWhenStoreLost(t *testing.T) {
	t.Parallel()
	src := newMemSource()
	src.add("m", "1", 2, 0, LinearFormat)
	src.add("m", "2", 3, 0, LinearFormat)
	c := newTestCache(t, src, 1)
	if _, err := infer(t, c, "m", "1", 1); err != nil {
		t.Fatal(err)
	}
	src.mu.Lock()
	delete(src.files, "m/1/model.json")
	delete(src.files, "m/2/model.json")
	src.mu.Unlock()
	if _, err := infer(t, c, "m", "2", 1); err == nil || !strings.Contains(err.Error(), "missing from the store") {
		t.Fatalf("never-loaded version: %v, want the store's error", err)
	}
	if y, err := infer(t, c, "m", "1", 4); err != nil || y != 8 {
		t.Fatalf("cached version after the store lost it: %v %v", y, err)
	}
}

func TestBadModelsFailAlone(t *testing.T) {
	t.Parallel()
	src := newMemSource()
	src.add("good", "1", 1, 1, LinearFormat)
	src.add("panics", "1", 1, 1, "boom")
	src.add("noruntime", "1", 1, 1, "onnx")
	src.add("corrupt", "1", 1, 1, LinearFormat)
	src.mu.Lock()
	src.files["corrupt/1/model.json"] = []byte(`{"tampered": true}`)
	src.mu.Unlock()
	c := newTestCache(t, src, 3)
	for model, want := range map[string]string{
		"panics":    "runtime panicked loading: native library blew up",
		"noruntime": `no runtime for format "onnx"`,
		"corrupt":   "the registry says",
		"missing":   "no model missing",
	} {
		if _, err := infer(t, c, model, "1", 1); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", model, err, want)
		}
	}
	if y, err := infer(t, c, "good", "1", 1); err != nil || y != 2 {
		t.Fatalf("good model after the bad ones: %v %v", y, err)
	}
}

func TestInUseIsNotEvicted(t *testing.T) {
	t.Parallel()
	src := newMemSource()
	src.add("a", "1", 1, 0, LinearFormat)
	src.add("b", "1", 1, 0, LinearFormat)
	c := newTestCache(t, src, 1)
	m, _, release, err := c.Acquire(context.Background(), "a", "1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := infer(t, c, "b", "1", 1); err != nil { // over the limit while a is in use
		t.Fatal(err)
	}
	if _, err := m.Infer(context.Background(), &oip.InferRequest{Inputs: []oip.Tensor{oip.NewFP32("x", []int64{1, 1}, []float32{1})}}); err != nil {
		t.Fatalf("a model in use was unloaded under its request: %v", err)
	}
	release()
	if got := c.Loaded(); len(got) != 1 {
		t.Fatalf("after release, loaded = %v, want one model", got)
	}
}

// corrupt replaces model/version's artifact with bytes that do not match
// the registry's checksum; restore puts the published bytes back.
func (s *memSource) corrupt(model, version string) (restore func()) {
	key := model + "/" + version + "/model.json"
	s.mu.Lock()
	defer s.mu.Unlock()
	good := s.files[key]
	s.files[key] = []byte(`{"tampered": true}`)
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.files[key] = good
	}
}

// A version that failed to load for good (a corrupt artifact) answers its
// failure without touching the store until FailureHold has passed; then
// a request tries again.
func TestFailureIsHeldThenRetried(t *testing.T) {
	t.Parallel()
	src := newMemSource()
	src.add("m", "1", 2, 0, LinearFormat)
	restore := src.corrupt("m", "1")
	const hold = 200 * time.Millisecond
	c := newTestCacheConfig(t, src, Config{Dir: t.TempDir(), FailureHold: hold})
	start := time.Now()
	_, err := infer(t, c, "m", "1", 1)
	if code := streams.CodeOf(err); code != streams.CodeFailedPrecondition {
		t.Fatalf("corrupt artifact: %v (code %q), want %s", err, code, streams.CodeFailedPrecondition)
	}
	if _, ok := c.Failed()["m/1"]; !ok {
		t.Fatalf("Failed() = %v, want m/1 held failed", c.Failed())
	}
	restore() // the store is fixed, but the failure is held
	_, err = infer(t, c, "m", "1", 1)
	if time.Since(start) < hold {
		if code := streams.CodeOf(err); code != streams.CodeFailedPrecondition {
			t.Fatalf("within the hold: %v (code %q), want the held failure", err, code)
		}
		if n := src.opens.Load(); n != 1 {
			t.Fatalf("%d opens within the hold, want 1: a held failure must not go back to the store", n)
		}
	}
	for deadline := time.Now().Add(2 * time.Second); len(c.Failed()) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still held failed after 2s: %v", c.Failed())
		}
	}
	if y, err := infer(t, c, "m", "1", 3); err != nil || y != 6 {
		t.Fatalf("after the hold: %v, %v; want 6", y, err)
	}
	if n := src.opens.Load(); n != 2 {
		t.Fatalf("%d opens, want 2 (the failure, then the retry after the hold)", n)
	}
	if f := c.Failed(); len(f) != 0 {
		t.Fatalf("Failed() = %v after a successful retry", f)
	}
}

// An unreachable store is not held against the version: the next request
// tries again.
func TestUnavailableIsRetriedAtOnce(t *testing.T) {
	t.Parallel()
	src := newMemSource()
	src.add("m", "1", 2, 0, LinearFormat)
	src.fails = []error{streams.Errorf(streams.CodeUnavailable, "store is down")}
	c := newTestCacheConfig(t, src, Config{Dir: t.TempDir(), FailureHold: time.Hour})
	_, err := infer(t, c, "m", "1", 1)
	if code := streams.CodeOf(err); code != streams.CodeUnavailable || !strings.Contains(err.Error(), "store is down") {
		t.Fatalf("store down: %v (code %q), want %s with the store's error", err, code, streams.CodeUnavailable)
	}
	if f := c.Failed(); len(f) != 0 {
		t.Fatalf("Failed() = %v: an unavailable store is not a held failure", f)
	}
	if y, err := infer(t, c, "m", "1", 3); err != nil || y != 6 {
		t.Fatalf("next request: %v, %v; want 6 (retried)", y, err)
	}
	if n := src.opens.Load(); n != 2 {
		t.Fatalf("%d opens, want 2", n)
	}
}

// Unload of a model a request is using waits for the request.
func TestUnloadInUseWaitsForRelease(t *testing.T) {
	t.Parallel()
	src := newMemSource()
	src.add("m", "1", 2, 0, LinearFormat)
	c := newTestCache(t, src, 3)
	m, _, release, err := c.Acquire(context.Background(), "m", "1")
	if err != nil {
		t.Fatal(err)
	}
	c.Unload("m", "1")
	if !c.IsLoaded("m", "1") {
		t.Fatal("unloaded under a request using it")
	}
	if _, err := m.Infer(context.Background(), &oip.InferRequest{Inputs: []oip.Tensor{oip.NewFP32("x", []int64{1, 1}, []float32{1})}}); err != nil {
		t.Fatal(err)
	}
	release()
	if c.IsLoaded("m", "1") || len(c.Loaded()) != 0 {
		t.Fatalf("after release: loaded = %v, want none", c.Loaded())
	}
	if y, err := infer(t, c, "m", "1", 2); err != nil || y != 4 {
		t.Fatalf("a request after the unload: %v, %v; want it loaded again", y, err)
	}
}

// Timings: a download takes time to fetch; a version already on disk (a
// replica started again on the same directory) takes none.
func TestTimingsFetchFromStoreAndDisk(t *testing.T) {
	t.Parallel()
	src := newMemSource()
	src.add("m", "1", 2, 0, LinearFormat)
	dir := t.TempDir()
	first := newTestCacheConfig(t, src, Config{Dir: dir})
	if _, _, ok := first.Timings("m", "1"); ok {
		t.Fatal("Timings of a version not loaded")
	}
	if _, err := infer(t, first, "m", "1", 1); err != nil {
		t.Fatal(err)
	}
	if fetch, _, ok := first.Timings("m", "1"); !ok || fetch <= 0 {
		t.Fatalf("download: fetch %v, ok %v; want > 0", fetch, ok)
	}
	first.Close()
	again := newTestCacheConfig(t, src, Config{Dir: dir})
	if _, err := infer(t, again, "m", "1", 1); err != nil {
		t.Fatal(err)
	}
	if fetch, _, ok := again.Timings("m", "1"); !ok || fetch != 0 {
		t.Fatalf("from disk: fetch %v, ok %v; want 0", fetch, ok)
	}
	if n := src.opens.Load(); n != 1 {
		t.Fatalf("%d opens, want 1: the second cache should find the artifact on disk", n)
	}
}
