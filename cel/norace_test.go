//go:build !race

package cel

const raceEnabled = false
