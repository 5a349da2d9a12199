package main

import (
	"os"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// waitEchoOff waits until the terminal whose master is ptmx stops echoing
// input, as term.ReadPassword makes it do, so that a test types a password
// only when it cannot appear on the screen.
func waitEchoOff(t *testing.T, ptmx *os.File) {
	t.Helper()
	deadline := time.Now().Add(cmdTimeout)
	for time.Now().Before(deadline) {
		var tio syscall.Termios
		_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, ptmx.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&tio)))
		if errno != 0 {
			t.Fatalf("TCGETS: %v", errno)
		}
		if tio.Lflag&syscall.ECHO == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the terminal still echoes: no password prompt")
}
