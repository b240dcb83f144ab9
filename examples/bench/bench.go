// Package bench holds the deployments of the benchmark against Ray Serve
// (bench/sluice/*.yaml). The stock binary registers them for YAML specs to
// name; no application of this package is built in.
package bench

import (
	"context"
	"encoding/json"

	"github.com/sluice-serve/sluice/platform/serve"
)

// Noop answers its input unchanged: a JSON body comes back as the same
// JSON, with Content-Type application/json. Decoding checks that the body
// is JSON (a body that is not is answered 400), which is about the work
// of the Ray Serve counterpart's request.json().
var Noop = serve.Func("Noop", func(_ context.Context, in json.RawMessage) (json.RawMessage, error) {
	return in, nil
})
