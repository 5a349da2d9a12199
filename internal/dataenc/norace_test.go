//go:build !race

package dataenc

const raceEnabled = false
