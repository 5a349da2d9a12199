//go:build !linux

package main

import (
	"os"
	"testing"
	"time"
)

// waitEchoOff gives term.ReadPassword time to turn echo off; see the Linux
// version, which checks.
func waitEchoOff(t *testing.T, ptmx *os.File) {
	time.Sleep(500 * time.Millisecond)
}
