//go:build race

package cel

// raceEnabled reports that the race detector runs, under which sync.Pool
// drops items at random and allocation counts are not meaningful.
const raceEnabled = true
