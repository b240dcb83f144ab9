package tensorflow

import (
	"fmt"
	"math"
	"os"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sluice-serve/sluice/replicas/gpu"
)

// Field numbers in tensorflow/core/protobuf/config.proto (checked against
// the descriptor of TensorFlow 2.17's config_pb2): ConfigProto.gpu_options
// is a GPUOptions message, in which per_process_gpu_memory_fraction is a
// double and allow_growth a bool.
const (
	configProtoGPUOptions    protowire.Number = 6
	gpuOptionsMemoryFraction protowire.Number = 1
	gpuOptionsAllowGrowth    protowire.Number = 4
)

// sessionConfig is the serialized tensorflow.ConfigProto of the sessions
// Load creates, from the GPU environment a node agent gives a replica
// (package gpu). Without any of those variables it is nil, TensorFlow's
// defaults. With any, it sets allow_growth, so that the process takes
// device memory as it needs it rather than nearly all of every visible
// device up front, which would leave nothing to a replica sharing the
// device; and with SLUICE_GPU_MEMORY_FRACTION, per_process_gpu_memory_fraction,
// the most of each visible device's memory the process may take.
//
// TensorFlow reads the GPU options of the first session of a process only;
// every session Load creates gets the same ones.
func sessionConfig() ([]byte, error) {
	fraction := os.Getenv(gpu.EnvMemoryFraction)
	if fraction == "" && os.Getenv(gpu.EnvCUDA) == "" && os.Getenv(gpu.EnvNVIDIA) == "" {
		return nil, nil
	}
	var opts []byte
	if fraction != "" {
		f, err := strconv.ParseFloat(fraction, 64)
		if err != nil || !(f > 0 && f <= 1) { // NaN fails both
			return nil, fmt.Errorf("%s=%q: want a number in (0, 1], the share of each GPU's memory this replica may take", gpu.EnvMemoryFraction, fraction)
		}
		opts = protowire.AppendTag(opts, gpuOptionsMemoryFraction, protowire.Fixed64Type)
		opts = protowire.AppendFixed64(opts, math.Float64bits(f))
	}
	opts = protowire.AppendTag(opts, gpuOptionsAllowGrowth, protowire.VarintType)
	opts = protowire.AppendVarint(opts, protowire.EncodeBool(true))

	cfg := protowire.AppendTag(nil, configProtoGPUOptions, protowire.BytesType)
	return protowire.AppendBytes(cfg, opts), nil
}
