//go:build !tensorflow

package tensorflow

// Model is a loaded SavedModel. In this build (no `tensorflow` tag) no model
// can be loaded.
type Model struct{}

// Load always fails with ErrNotBuilt in a build without the `tensorflow` tag.
func Load(dir string) (*Model, error) { return nil, ErrNotBuilt }

// Infer always fails with ErrNotBuilt.
func (m *Model) Infer(inputs map[string]Input) (map[string]Output, error) {
	return nil, ErrNotBuilt
}

// Inputs returns nil.
func (m *Model) Inputs() []TensorSpec { return nil }

// Outputs returns nil.
func (m *Model) Outputs() []TensorSpec { return nil }

// Close does nothing.
func (m *Model) Close() error { return nil }
