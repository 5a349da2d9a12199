//go:build race

package envelope_test

// raceEnabled scales down tests that the race detector makes slow.
const raceEnabled = true
