package tensorflow

import (
	"encoding/hex"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sluice-serve/sluice/replicas/gpu"
)

// gpuOptions is what a ConfigProto sets of its gpu_options.
type gpuOptions struct {
	fraction    float64 // 0: unset
	allowGrowth bool
}

// decodeConfig reads cfg as a ConfigProto that holds gpu_options and
// nothing else.
func decodeConfig(t *testing.T, cfg []byte) gpuOptions {
	t.Helper()
	var opts []byte
	for b := cfg; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("ConfigProto %x: %v", cfg, protowire.ParseError(n))
		}
		b = b[n:]
		if num != 6 || typ != protowire.BytesType {
			t.Fatalf("ConfigProto %x: field %d of wire type %d, want only gpu_options (6, bytes)", cfg, num, typ)
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			t.Fatalf("ConfigProto %x: gpu_options: %v", cfg, protowire.ParseError(n))
		}
		opts, b = v, b[n:]
	}
	if opts == nil {
		t.Fatalf("ConfigProto %x has no gpu_options", cfg)
	}
	var got gpuOptions
	for b := opts; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("GPUOptions %x: %v", opts, protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(b)
			if n < 0 {
				t.Fatalf("GPUOptions %x: per_process_gpu_memory_fraction: %v", opts, protowire.ParseError(n))
			}
			got.fraction, b = math.Float64frombits(v), b[n:]
		case num == 4 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				t.Fatalf("GPUOptions %x: allow_growth: %v", opts, protowire.ParseError(n))
			}
			got.allowGrowth, b = protowire.DecodeBool(v), b[n:]
		default:
			t.Fatalf("GPUOptions %x: unexpected field %d of wire type %d", opts, num, typ)
		}
	}
	return got
}

// setGPUEnv sets the three variables of package gpu, "" leaving one out.
func setGPUEnv(t *testing.T, cuda, nvidia, fraction string) {
	t.Setenv(gpu.EnvCUDA, cuda)
	t.Setenv(gpu.EnvNVIDIA, nvidia)
	t.Setenv(gpu.EnvMemoryFraction, fraction)
}

func TestSessionConfig(t *testing.T) {
	const uuid = "GPU-5e0a2c1b-7f3d-4e8a-9b61-0c2d4f6a8e10"
	for _, tc := range []struct {
		name                   string
		cuda, nvidia, fraction string
		want                   gpuOptions
	}{
		{"fraction", uuid, uuid, "0.5", gpuOptions{fraction: 0.5, allowGrowth: true}},
		{"whole device", uuid, uuid, "1", gpuOptions{fraction: 1, allowGrowth: true}},
		{"two devices", uuid + ",GPU-1", uuid + ",GPU-1", "0.25", gpuOptions{fraction: 0.25, allowGrowth: true}},
		{"no limit", uuid, uuid, "", gpuOptions{allowGrowth: true}},
		{"CUDA only", "0", "", "", gpuOptions{allowGrowth: true}},
		{"NVIDIA only", "", "all", "", gpuOptions{allowGrowth: true}},
		{"fraction only", "", "", "0.125", gpuOptions{fraction: 0.125, allowGrowth: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setGPUEnv(t, tc.cuda, tc.nvidia, tc.fraction)
			cfg, err := sessionConfig()
			if err != nil {
				t.Fatal(err)
			}
			if got := decodeConfig(t, cfg); got != tc.want {
				t.Errorf("gpu_options %+v, want %+v", got, tc.want)
			}
		})
	}
}

// The bytes TensorFlow 2.17's own Python protobuf gives for
// ConfigProto(gpu_options=GPUOptions(per_process_gpu_memory_fraction=0.5,
// allow_growth=True)).SerializeToString().
func TestSessionConfigBytes(t *testing.T) {
	setGPUEnv(t, "GPU-0", "GPU-0", "0.5")
	cfg, err := sessionConfig()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(cfg), "320b09000000000000e03f2001"; got != want {
		t.Errorf("ConfigProto %s, want %s", got, want)
	}
}

func TestSessionConfigBadFraction(t *testing.T) {
	for _, v := range []string{"half", "0", "-0.5", "1.5", "NaN", "Inf", "50%", " 0.5"} {
		t.Run(v, func(t *testing.T) {
			setGPUEnv(t, "GPU-0", "GPU-0", v)
			cfg, err := sessionConfig()
			if err == nil {
				t.Fatalf("%s=%q gave %x, want an error", gpu.EnvMemoryFraction, v, cfg)
			}
			for _, w := range []string{gpu.EnvMemoryFraction, `"` + v + `"`} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
}

func TestSessionConfigNoGPU(t *testing.T) {
	setGPUEnv(t, "", "", "")
	cfg, err := sessionConfig()
	if cfg != nil || err != nil {
		t.Errorf("without GPU variables: %x, %v; want nil options", cfg, err)
	}
}
