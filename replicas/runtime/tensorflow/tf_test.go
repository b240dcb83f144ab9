//go:build tensorflow

package tensorflow

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-serve/sluice/replicas/gpu"
)

const testdata = "../testdata"

func load(t *testing.T, name string) *Model {
	t.Helper()
	m, err := Load(filepath.Join(testdata, name))
	if err != nil {
		t.Fatalf("Load(%s): %v", name, err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close(%s): %v", name, err)
		}
	})
	return m
}

func f32Bytes(v ...float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func f32s(t *testing.T, o Output) []float32 {
	t.Helper()
	if o.Datatype != "FP32" {
		t.Fatalf("datatype %s, want FP32", o.Datatype)
	}
	if len(o.Data)%4 != 0 {
		t.Fatalf("%d bytes of FP32", len(o.Data))
	}
	v := make([]float32, len(o.Data)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(o.Data[4*i:]))
	}
	return v
}

func fp32(shape []int64, v ...float32) Input {
	return Input{Datatype: "FP32", Shape: shape, Data: f32Bytes(v...)}
}

func inferAffine(t *testing.T, m *Model, x ...float32) Output {
	t.Helper()
	out, err := m.Infer(map[string]Input{"x": fp32([]int64{int64(len(x)), 1}, x...)})
	if err != nil {
		t.Fatalf("Infer: %v", err)
	}
	y, ok := out["y"]
	if !ok || len(out) != 1 {
		t.Fatalf("outputs %v, want just y", out)
	}
	return y
}

func TestAffine(t *testing.T) {
	for _, tc := range []struct {
		model string
		want  []float32
	}{
		{"affine_v1", []float32{3, 5, 7}},  // 2x + 1
		{"affine_v2", []float32{4, 7, 10}}, // 3x + 1
	} {
		t.Run(tc.model, func(t *testing.T) {
			m := load(t, tc.model)
			y := inferAffine(t, m, 1, 2, 3)
			if !slices.Equal(y.Shape, []int64{3, 1}) {
				t.Errorf("shape %v, want [3 1]", y.Shape)
			}
			if got := f32s(t, y); !slices.Equal(got, tc.want) {
				t.Errorf("y = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSignatureFromFile(t *testing.T) {
	m := load(t, "affine_v1")
	want := []TensorSpec{{Name: "x", Tensor: "serving_default_x:0", Datatype: "FP32", Shape: []int64{-1, 1}}}
	if got := m.Inputs(); !slices.EqualFunc(got, want, specEqual) {
		t.Errorf("Inputs() = %+v, want %+v", got, want)
	}
	want = []TensorSpec{{Name: "y", Tensor: "StatefulPartitionedCall:0", Datatype: "FP32", Shape: []int64{-1, 1}}}
	if got := m.Outputs(); !slices.EqualFunc(got, want, specEqual) {
		t.Errorf("Outputs() = %+v, want %+v", got, want)
	}
}

func specEqual(a, b TensorSpec) bool {
	return a.Name == b.Name && a.Tensor == b.Tensor && a.Datatype == b.Datatype && slices.Equal(a.Shape, b.Shape)
}

// Without sluice-signature.json the mapping comes from the SavedModel's
// serving_default signature and must be the same.
func TestSignatureFromSavedModel(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "affine_v2")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(testdata, "affine_v2"))); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, SignatureFile)); err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	withFile := load(t, "affine_v2")
	if !slices.EqualFunc(m.Inputs(), withFile.Inputs(), specEqual) || !slices.EqualFunc(m.Outputs(), withFile.Outputs(), specEqual) {
		t.Errorf("derived signature %+v / %+v, file says %+v / %+v", m.Inputs(), m.Outputs(), withFile.Inputs(), withFile.Outputs())
	}
	if got := f32s(t, inferAffine(t, m, 1, 2, 3)); !slices.Equal(got, []float32{4, 7, 10}) {
		t.Errorf("y = %v", got)
	}
}

// The classifier's fixed weights, as in scripts/make_fixtures.py.
var (
	clsW = [4][3]float64{{0.5, -0.25, 0.125}, {-1.0, 0.75, 0.25}, {0.25, 0.5, -0.5}, {1.0, -0.5, 0.0}}
	clsB = [3]float64{0.1, -0.2, 0.05}
)

func TestClassifier(t *testing.T) {
	m := load(t, "classifier")
	x := []float32{1, 2, 3, 4, 0, 0, 0, 0, -1, 0.5, 2, -3, 10, -10, 10, -10}
	out, err := m.Infer(map[string]Input{"x": fp32([]int64{4, 4}, x...)})
	if err != nil {
		t.Fatal(err)
	}
	p := out["probabilities"]
	if !slices.Equal(p.Shape, []int64{4, 3}) {
		t.Fatalf("shape %v, want [4 3]", p.Shape)
	}
	got := f32s(t, p)
	for r := 0; r < 4; r++ {
		row := got[3*r : 3*r+3]
		var sum float64
		var logits [3]float64
		for c := 0; c < 3; c++ {
			sum += float64(row[c])
			logits[c] = clsB[c]
			for k := 0; k < 4; k++ {
				logits[c] += float64(x[4*r+k]) * clsW[k][c]
			}
		}
		if math.Abs(sum-1) > 1e-5 {
			t.Errorf("row %d = %v sums to %v", r, row, sum)
		}
		mx := slices.Max(logits[:])
		var z float64
		for c := range logits {
			z += math.Exp(logits[c] - mx)
		}
		for c := range logits {
			if want := math.Exp(logits[c]-mx) / z; math.Abs(float64(row[c])-want) > 1e-5 {
				t.Errorf("row %d class %d = %v, want %v", r, c, row[c], want)
			}
		}
	}
}

func TestBytesAndInt64(t *testing.T) {
	m := load(t, "text")
	in := []string{"sluice", "", "Hi \u00e9", strings.Repeat("x", 100)}
	out, err := m.Infer(map[string]Input{"text": {Datatype: "BYTES", Shape: []int64{4, 1}, Data: encodeBytes(in)}})
	if err != nil {
		t.Fatal(err)
	}
	l := out["length"]
	if l.Datatype != "INT64" || !slices.Equal(l.Shape, []int64{4, 1}) || len(l.Data) != 32 {
		t.Fatalf("length = %+v", l)
	}
	for i, s := range in {
		if got := int64(binary.LittleEndian.Uint64(l.Data[8*i:])); got != int64(len(s)) {
			t.Errorf("length[%d] = %d, want %d", i, got, len(s))
		}
	}
	u := out["upper"]
	if u.Datatype != "BYTES" || !slices.Equal(u.Shape, []int64{4, 1}) {
		t.Fatalf("upper = %+v", u)
	}
	got, err := decodeBytes(u.Data, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"SLUICE", "", "HI \u00e9", strings.Repeat("X", 100)}
	if !slices.Equal(got, want) {
		t.Errorf("upper = %q, want %q", got, want)
	}
}

func TestEmptyBatch(t *testing.T) {
	m := load(t, "affine_v1")
	out, err := m.Infer(map[string]Input{"x": fp32([]int64{0, 1})})
	if err != nil {
		t.Fatal(err)
	}
	if y := out["y"]; !slices.Equal(y.Shape, []int64{0, 1}) || len(y.Data) != 0 {
		t.Errorf("y = %+v", y)
	}
}

func TestInferErrors(t *testing.T) {
	m := load(t, "affine_v1")
	good := fp32([]int64{3, 1}, 1, 2, 3)
	for _, tc := range []struct {
		name   string
		inputs map[string]Input
		want   []string
	}{
		{"wrong dtype", map[string]Input{"x": {Datatype: "INT64", Shape: []int64{3, 1}, Data: make([]byte, 24)}},
			[]string{`input "x"`, "INT64", "FP32"}},
		{"missing input", map[string]Input{}, []string{`missing input "x"`}},
		{"unknown input", map[string]Input{"x": good, "z": good}, []string{`unknown input "z"`, "x"}},
		{"wrong rank", map[string]Input{"x": fp32([]int64{3}, 1, 2, 3)}, []string{`input "x"`, "shape [3]"}},
		{"wrong dim", map[string]Input{"x": fp32([]int64{1, 3}, 1, 2, 3)}, []string{`input "x"`, "shape [1 3]"}},
		{"short data", map[string]Input{"x": fp32([]int64{3, 1}, 1, 2)}, []string{`input "x"`, "8 bytes", "needs 12"}},
		{"negative dim", map[string]Input{"x": fp32([]int64{-3, 1})}, []string{`input "x"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := m.Infer(tc.inputs)
			if err == nil {
				t.Fatalf("Infer succeeded: %+v", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// The model still works after rejected requests.
	if got := f32s(t, inferAffine(t, m, 1, 2, 3)); !slices.Equal(got, []float32{3, 5, 7}) {
		t.Errorf("y = %v", got)
	}
}

func TestBytesErrors(t *testing.T) {
	m := load(t, "text")
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"too few", encodeBytes([]string{"a"}), "1 elements, shape needs 2"},
		{"too many", encodeBytes([]string{"a", "b", "c"}), "more than the 2"},
		{"truncated prefix", append(encodeBytes([]string{"a"}), 1, 0), "truncated length prefix"},
		{"overrun", append(encodeBytes([]string{"a"}), 9, 0, 0, 0, 'b'), "overruns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Infer(map[string]Input{"text": {Datatype: "BYTES", Shape: []int64{2, 1}, Data: tc.data}})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `input "text"`) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope")); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing dir: err = %v", err)
	}
	empty := t.TempDir()
	if _, err := Load(empty); err == nil {
		t.Error("empty dir loaded")
	}

	// A signature file naming a tensor the graph lacks, or the wrong dtype.
	for _, tc := range []struct{ sig, want string }{
		{`{"inputs":[{"name":"x","tensor":"nope:0","datatype":"FP32","shape":[-1,1]}],
		   "outputs":[{"name":"y","tensor":"StatefulPartitionedCall:0","datatype":"FP32","shape":[-1,1]}]}`,
			`no operation "nope"`},
		{`{"inputs":[{"name":"x","tensor":"serving_default_x:0","datatype":"INT32","shape":[-1,1]}],
		   "outputs":[{"name":"y","tensor":"StatefulPartitionedCall:0","datatype":"FP32","shape":[-1,1]}]}`,
			`tensor "serving_default_x:0" is FP32 in the graph, signature says INT32`},
		{`{"inputs":[{"name":"x","tensor":"serving_default_x:7","datatype":"FP32","shape":[-1,1]}],
		   "outputs":[{"name":"y","tensor":"StatefulPartitionedCall:0","datatype":"FP32","shape":[-1,1]}]}`,
			`operation has 1 outputs`},
		{`{"inputs":[], "outputs":[]}`, "no inputs"},
		{`{"inputs":[], "bogus": 1}`, "bogus"},
	} {
		dir := filepath.Join(t.TempDir(), "m")
		if err := os.CopyFS(dir, os.DirFS(filepath.Join(testdata, "affine_v1"))); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, SignatureFile), []byte(tc.sig), 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := Load(dir)
		if err == nil {
			m.Close()
			t.Errorf("loaded with bad signature %s", tc.sig)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want it to mention %q", err, tc.want)
		}
	}
}

// A replica placed on a share of a GPU loads its models with that share in
// the session options: TensorFlow must accept the bytes (a CPU-only build
// accepts and ignores GPU options) and the model still infer, and a bad
// share fails Load naming the variable.
func TestLoadGPUMemoryFraction(t *testing.T) {
	setGPUEnv(t, "GPU-0", "GPU-0", "0.5")
	m := load(t, "affine_v1")
	if got := f32s(t, inferAffine(t, m, 1, 2, 3)); !slices.Equal(got, []float32{3, 5, 7}) {
		t.Errorf("y = %v, want [3 5 7]", got)
	}

	t.Setenv(gpu.EnvMemoryFraction, "2")
	if m, err := Load(filepath.Join(testdata, "affine_v1")); err == nil {
		m.Close()
		t.Errorf("loaded with %s=2", gpu.EnvMemoryFraction)
	} else if !strings.Contains(err.Error(), gpu.EnvMemoryFraction+`="2"`) {
		t.Errorf("err = %v, want it to name %s and the value", err, gpu.EnvMemoryFraction)
	}
}

func TestClose(t *testing.T) {
	m, err := Load(filepath.Join(testdata, "affine_v1"))
	if err != nil {
		t.Fatal(err)
	}
	inferAffine(t, m, 1)
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := m.Infer(map[string]Input{"x": fp32([]int64{1, 1}, 1)}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Infer after Close: err = %v", err)
	}
}

// Loading and closing many times must not grow the process: Close deletes
// the TF session (and with it the graph's kernels and restored variables).
// Measured here: ~0.6 MiB per model left open, ~0 per model closed.
func TestCloseFrees(t *testing.T) {
	cycles := 200
	if testing.Short() {
		cycles = 40
	}
	cycle := func() {
		m, err := Load(filepath.Join(testdata, "classifier"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Infer(map[string]Input{"x": fp32([]int64{1, 4}, 1, 2, 3, 4)}); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ { // warm up TF's one-time allocations
		cycle()
	}
	runtime.GC()
	before := rss(t)
	for i := 0; i < cycles; i++ {
		cycle()
	}
	runtime.GC()
	after := rss(t)
	if before > 0 && after-before > 48<<20 {
		t.Errorf("RSS grew %d MiB over %d load/close cycles", (after-before)>>20, cycles)
	}
	t.Logf("RSS %d MiB -> %d MiB over %d load/close cycles", before>>20, after>>20, cycles)
}

// rss is the process's resident set in bytes (0 where /proc is missing).
func rss(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

func TestConcurrentInfer(t *testing.T) {
	m := load(t, "affine_v2")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				x := float32(g*100 + i)
				out, err := m.Infer(map[string]Input{"x": fp32([]int64{2, 1}, x, -x)})
				if err != nil {
					errs <- err
					return
				}
				y := out["y"].Data
				if got := math.Float32frombits(binary.LittleEndian.Uint32(y)); got != 3*x+1 {
					t.Errorf("y(%v) = %v", x, got)
				}
				if got := math.Float32frombits(binary.LittleEndian.Uint32(y[4:])); got != -3*x+1 {
					t.Errorf("y(%v) = %v", -x, got)
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
