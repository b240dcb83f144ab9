package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluice-serve/sluice/platform/spec"
	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
	"github.com/sluice-serve/sluice/replicas/models"
	"github.com/sluice-serve/sluice/replicas/runtime/tensorflow"
)

// signatureFile is the JSON form of a tensor signature:
// {"inputs": [{"name", "datatype", "shape"}], "outputs": [...]}; the
// TensorFlow runtime's sluice-signature.json has this shape too.
type signatureFile struct {
	Inputs  []spec.TensorSpec `json:"inputs"`
	Outputs []spec.TensorSpec `json:"outputs"`
}

// describeArtifact fills in the format and the signature that `models
// push` was not given, from what the artifact is: a SavedModel directory
// (with its sluice-signature.json when present) or a linear model.json.
func describeArtifact(root string, hdr *sluicev1.PushHeader, sigPath string) error {
	var sig *signatureFile
	if sigPath != "" {
		s, err := readSignature(sigPath)
		if err != nil {
			return fmt.Errorf("--signature: %w", err)
		}
		sig = s
	}
	switch {
	case exists(filepath.Join(root, "saved_model.pb")):
		if hdr.Format == "" {
			hdr.Format = tensorflow.Format
		}
		if p := filepath.Join(root, tensorflow.SignatureFile); sig == nil && exists(p) {
			s, err := readSignature(p)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			sig = s
		}
	case exists(filepath.Join(root, "model.json")) || filepath.Base(root) == "model.json":
		p := root
		if filepath.Base(root) != "model.json" {
			p = filepath.Join(root, "model.json")
		}
		if s, ok := models.LinearSignature(p); ok {
			if hdr.Format == "" {
				hdr.Format = models.LinearFormat
			}
			if sig == nil {
				sig = &signatureFile{Inputs: s[:1], Outputs: s[1:]}
			}
		}
	}
	if sig != nil {
		hdr.Inputs, hdr.Outputs = signatureToProto(sig.Inputs), signatureToProto(sig.Outputs)
	}
	return nil
}

func readSignature(p string) (*signatureFile, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var s signatureFile
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("not a signature (inputs and outputs of name, datatype, shape): %w", err)
	}
	for _, t := range append(append([]spec.TensorSpec{}, s.Inputs...), s.Outputs...) {
		if t.Name == "" || t.Datatype == "" {
			return nil, errors.New("every tensor needs a name and a datatype")
		}
	}
	return &s, nil
}

func signatureToProto(ts []spec.TensorSpec) []*sluicev1.TensorSignature {
	out := make([]*sluicev1.TensorSignature, len(ts))
	for i, t := range ts {
		out[i] = &sluicev1.TensorSignature{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape}
	}
	return out
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
