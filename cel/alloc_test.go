package cel

import (
	"context"
	"runtime"
	"testing"
)

// TestNoAllocationGrowth checks, for each benchmarked rule, that an
// evaluation allocates as much after 10,000 evaluations as after 100,
// within a small budget, and that 10,000 evaluations on fresh Inputs
// leave the heap as it was. (Not parallel: it measures the heap.)
func TestNoAllocationGrowth(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	ctx := context.Background()
	budget := map[string]float64{"header": 7, "json_field": 9, "bucket": 7, "transform": 16}
	for _, r := range benchRules {
		p, err := Compile(r.expr, r.kind)
		if err != nil {
			t.Fatal(err)
		}
		in := benchInput()
		eval := func() { run(ctx, t, p, r.kind, in) }
		eval()
		few := testing.AllocsPerRun(100, eval)
		many := testing.AllocsPerRun(10_000, eval)
		t.Logf("%s: %v allocations per evaluation (100 runs), %v (10,000 runs)", r.name, few, many)
		if many != few || many > budget[r.name] {
			t.Errorf("%s: %v allocations per evaluation over 100 runs, %v over 10,000; want equal and at most %v",
				r.name, few, many, budget[r.name])
		}

		// Fresh Inputs, as per request; the heap must not keep them.
		for range 1000 {
			run(ctx, t, p, r.kind, benchInput())
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range 10_000 {
			run(ctx, t, p, r.kind, benchInput())
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
		t.Logf("%s: heap %+d bytes over 10,000 evaluations on fresh Inputs", r.name, grew)
		if grew > 256<<10 {
			t.Errorf("%s: the heap grew by %d bytes over 10,000 evaluations", r.name, grew)
		}
	}
}
