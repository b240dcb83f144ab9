#!/usr/bin/env python3
"""Write the small TensorFlow SavedModels used by replicas/runtime/tensorflow.

Run it through `scripts/tf.sh fixtures`, which uses a cached virtualenv with
the same tensorflow-cpu wheel whose libtensorflow the Go runtime links:

    scripts/tf.sh fixtures            # writes replicas/runtime/testdata/

Models (all deterministic, fixed weights, signature "serving_default", tag
"serve"):

  affine_v1   x FP32 [-1,1] -> y FP32 [-1,1], y = 2x + 1
  affine_v2   x FP32 [-1,1] -> y FP32 [-1,1], y = 3x + 1
  classifier  x FP32 [-1,4] -> probabilities FP32 [-1,3], softmax(x W + b)
  text        text BYTES [-1,1] -> length INT64 [-1,1] (bytes),
                                   upper BYTES [-1,1] (ASCII upper-cased)

Next to each SavedModel it writes sluice-signature.json, the mapping from the
signature's (Open Inference Protocol) tensor names to the graph tensors the
TensorFlow C API feeds and fetches:

  {"signature": "serving_default",
   "inputs":  [{"name": "x", "tensor": "serving_default_x:0",
                "datatype": "FP32", "shape": [-1, 1]}],
   "outputs": [{"name": "y", "tensor": "StatefulPartitionedCall:0",
                "datatype": "FP32", "shape": [-1, 1]}]}

The mapping is read back from the written SavedModel's MetaGraphDef (what
`saved_model_cli show --all` prints), never assumed. Each model is reloaded
and checked against numpy before the script succeeds.
"""

import json
import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402

# TensorFlow DType enum value -> Open Inference Protocol datatype.
OIP_DATATYPES = {
    tf.float16.as_datatype_enum: "FP16",
    tf.float32.as_datatype_enum: "FP32",
    tf.float64.as_datatype_enum: "FP64",
    tf.int8.as_datatype_enum: "INT8",
    tf.int16.as_datatype_enum: "INT16",
    tf.int32.as_datatype_enum: "INT32",
    tf.int64.as_datatype_enum: "INT64",
    tf.uint8.as_datatype_enum: "UINT8",
    tf.uint16.as_datatype_enum: "UINT16",
    tf.uint32.as_datatype_enum: "UINT32",
    tf.uint64.as_datatype_enum: "UINT64",
    tf.bool.as_datatype_enum: "BOOL",
    tf.string.as_datatype_enum: "BYTES",
}

# Fixed classifier weights: 4 features -> 3 classes.
CLASSIFIER_W = np.array(
    [
        [0.5, -0.25, 0.125],
        [-1.0, 0.75, 0.25],
        [0.25, 0.5, -0.5],
        [1.0, -0.5, 0.0],
    ],
    dtype=np.float32,
)
CLASSIFIER_B = np.array([0.1, -0.2, 0.05], dtype=np.float32)


class Affine(tf.Module):
    """y = a*x + b with a and b stored as variables (restored by the loader)."""

    def __init__(self, a, b):
        super().__init__()
        self.a = tf.Variable(float(a), dtype=tf.float32, trainable=False, name="a")
        self.b = tf.Variable(float(b), dtype=tf.float32, trainable=False, name="b")

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
    def serve(self, x):
        return {"y": x * self.a + self.b}


class Classifier(tf.Module):
    """One dense layer with softmax, fixed weights."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(CLASSIFIER_W, trainable=False, name="w")
        self.b = tf.Variable(CLASSIFIER_B, trainable=False, name="b")

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(self, x):
        return {"probabilities": tf.nn.softmax(tf.matmul(x, self.w) + self.b, axis=-1)}


class Text(tf.Module):
    """BYTES in, BYTES and INT64 out: exercises string tensors both ways."""

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.string, name="text")])
    def serve(self, text):
        return {
            "length": tf.cast(tf.strings.length(text), tf.int64),
            "upper": tf.strings.upper(text),
        }


def shape_of(tensor_shape_proto):
    if tensor_shape_proto.unknown_rank:
        return None
    return [int(d.size) for d in tensor_shape_proto.dim]


def read_signature(model_dir, key="serving_default"):
    """The signature as the C API sees it, from saved_model.pb."""
    sm = saved_model_pb2.SavedModel()
    with open(os.path.join(model_dir, "saved_model.pb"), "rb") as f:
        sm.ParseFromString(f.read())
    for mg in sm.meta_graphs:
        if "serve" in mg.meta_info_def.tags and key in mg.signature_def:
            sig = mg.signature_def[key]
            break
    else:
        raise SystemExit(f"{model_dir}: no 'serve' meta graph with signature {key!r}")

    def entries(m):
        out = []
        for name in sorted(m):
            info = m[name]
            if info.dtype not in OIP_DATATYPES:
                raise SystemExit(f"{model_dir}: {name}: unsupported dtype {info.dtype}")
            out.append(
                {
                    "name": name,
                    "tensor": info.name,
                    "datatype": OIP_DATATYPES[info.dtype],
                    "shape": shape_of(info.tensor_shape),
                }
            )
        return out

    return {"signature": key, "inputs": entries(sig.inputs), "outputs": entries(sig.outputs)}


def dir_size(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


def save(module, out_dir, name):
    path = os.path.join(out_dir, name)
    if os.path.exists(path):
        shutil.rmtree(path)
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    sig = read_signature(path)
    with open(os.path.join(path, "sluice-signature.json"), "w") as f:
        json.dump(sig, f, indent=2)
        f.write("\n")
    return path, sig


def check(path, feeds, want, atol=1e-6):
    loaded = tf.saved_model.load(path, tags=["serve"])
    fn = loaded.signatures["serving_default"]
    got = fn(**{k: tf.constant(v) for k, v in feeds.items()})
    for k, v in want.items():
        np.testing.assert_allclose(got[k].numpy(), v, atol=atol, err_msg=f"{path}: {k}")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "replicas", "runtime", "testdata"
    )
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    print(f"tensorflow {tf.__version__}, writing to {out_dir}")

    x = np.array([[1.0], [2.0], [3.0]], dtype=np.float32)
    feats = np.array([[1, 2, 3, 4], [0, 0, 0, 0], [-1, 0.5, 2, -3]], dtype=np.float32)
    logits = feats @ CLASSIFIER_W + CLASSIFIER_B
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)

    models = [
        ("affine_v1", Affine(2, 1), {"x": x}, {"y": 2 * x + 1}),
        ("affine_v2", Affine(3, 1), {"x": x}, {"y": 3 * x + 1}),
        ("classifier", Classifier(), {"x": feats}, {"probabilities": probs}),
        (
            "text",
            Text(),
            {"text": np.array([[b"sluice"], [b""], [b"Hi \xc3\xa9"]], dtype=object)},
            {"length": np.array([[6], [0], [5]], dtype=np.int64)},
        ),
    ]
    for name, module, feeds, want in models:
        path, sig = save(module, out_dir, name)
        check(path, feeds, want)
        print(f"{name}: {dir_size(path)} bytes")
        for kind in ("inputs", "outputs"):
            for e in sig[kind]:
                print(f"  {kind[:-1]:6} {e['name']:14} {e['tensor']:28} {e['datatype']} {e['shape']}")


if __name__ == "__main__":
    main()
