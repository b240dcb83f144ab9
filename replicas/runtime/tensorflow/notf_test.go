//go:build !tensorflow

package tensorflow

import (
	"errors"
	"strings"
	"testing"
)

func TestBuiltWithoutTensorflow(t *testing.T) {
	m, err := Load("../testdata/affine_v1")
	if m != nil || !errors.Is(err, ErrNotBuilt) {
		t.Fatalf("Load = %v, %v; want nil, ErrNotBuilt", m, err)
	}
	if !strings.Contains(err.Error(), "built without tensorflow") || !strings.Contains(err.Error(), "-tags tensorflow") {
		t.Errorf("error %q does not say how to rebuild", err)
	}
	var zero Model
	if _, err := zero.Infer(map[string]Input{}); !errors.Is(err, ErrNotBuilt) {
		t.Errorf("Infer: %v", err)
	}
	if err := zero.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
