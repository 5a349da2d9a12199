package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/creack/pty"

	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// runOnTTY runs the binary with stdout and stderr on a pseudo-terminal and
// returns everything the terminal showed, and the exit status.
func runOnTTY(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, mailwire, args...)
	cmd.Env = cleanEnv(nil)
	cmd.Stdout, cmd.Stderr = tty, tty
	if err := cmd.Start(); err != nil {
		tty.Close()
		t.Fatal(err)
	}
	tty.Close() // the child holds its own copy
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() {
		// Reading ends with EIO once the child has exited and closed the
		// terminal.
		io.Copy(&out, ptmx)
		close(copied)
	}()
	err = cmd.Wait()
	<-copied
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

func TestBatchProgressOnTerminal(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(s *smtptest.Server) { s.Rcpt = refuseNobody })
	mbox := writeFile(t, t.TempDir(), "in.mbox", testMbox, 0o644)
	out, code := runOnTTY(t, "send", "--mbox", mbox, s.URL())
	if code != exitNoUser && code != exitDataErr {
		t.Fatalf("exit %d\n%q", code, out)
	}
	// The bar is redrawn in place: a carriage return, an erase-line
	// sequence and the bar, for each message; the rate once a message
	// was delivered.
	bars := regexp.MustCompile(`\r\x1b\[K\[[#-]+\] +(\d)/4 +\d+%  ok \d+  partial \d+  failed \d+(  [0-9.]+ msgs/s)?`).FindAllStringSubmatch(out, -1)
	for _, b := range bars {
		if (b[1] == "0") != (b[2] == "") {
			t.Errorf("progress bar %q: want a rate once a message was delivered, and only then", b[0])
		}
	}
	seen := map[string]bool{}
	for _, b := range bars {
		seen[b[1]] = true
	}
	for _, n := range []string{"0", "1", "2", "3", "4"} {
		if !seen[n] {
			t.Errorf("no progress bar at %s/4 in the terminal output:\n%q", n, out)
		}
	}
	// The per-message lines and the summary are there too, the bar erased
	// before each.
	for _, want := range []string{
		"\r\x1b[Kok      " + mbox + "#1:",
		"\r\x1b[Kpartial " + mbox + "#2:",
		"\r\x1b[Kfailed  " + mbox + "#3:",
		"2 sent, 1 partial, 1 failed (4 messages)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, out)
		}
	}
	// The last thing on the terminal is the summary, not a bar.
	if i, j := strings.LastIndex(out, "msgs/s\r\n"), strings.LastIndex(out, "\x1b[K["); i < j {
		t.Errorf("a progress bar follows the summary:\n%q", out[j:])
	}
}

func TestBatchNoProgressFlag(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	dir := t.TempDir()
	writeFile(t, dir, "a.eml", "From: a@example.org\nTo: b@example.org\n\nx\n", 0o644)
	writeFile(t, dir, "b.eml", "From: a@example.org\nTo: b@example.org\n\nx\n", 0o644)
	out, code := runOnTTY(t, "send", "--no-progress", s.URL(), dir)
	if code != exitOK {
		t.Fatalf("exit %d\n%q", code, out)
	}
	if strings.Contains(out, "\x1b[K") || strings.Contains(out, "[#") {
		t.Errorf("progress drawn despite --no-progress:\n%q", out)
	}
	if !strings.Contains(out, "ok      "+filepath.Join(dir, "a.eml")) {
		t.Errorf("no per-message line:\n%q", out)
	}
}

func TestPasswordPromptOnTerminal(t *testing.T) {
	t.Parallel()
	const secret = "typed-Secret-9"
	s := startServer(t, func(s *smtptest.Server) {
		s.Security = transport.StartTLS
		s.Users = map[string]string{"alice": secret}
	})
	file := writeFile(t, t.TempDir(), "m.eml", simpleMsg, 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, mailwire, "send", "--ca", caFile(t, s), "--user", "alice", "smtp://"+s.Addr, file)
	cmd.Env = cleanEnv(nil)
	// pty.Start makes the terminal the child's controlling terminal, which
	// the prompt opens as /dev/tty.
	ptmx, err := pty.Start(cmd)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	var out bytes.Buffer
	buf := make([]byte, 256)
	for !strings.Contains(out.String(), "Password for alice: ") {
		n, err := ptmx.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			t.Fatalf("no prompt: %v\n%q", err, out.String())
		}
	}
	waitEchoOff(t, ptmx)
	if _, err := ptmx.Write([]byte(secret + "\r")); err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{})
	go func() { io.Copy(&out, ptmx); close(copied) }()
	err = cmd.Wait()
	<-copied
	if err != nil {
		t.Fatalf("%v\n%q", err, out.String())
	}
	if strings.Contains(out.String(), secret) {
		t.Errorf("the password was echoed:\n%q", out.String())
	}
	if m := s.Messages(); len(m) != 1 || m[0].AuthUser != "alice" {
		t.Errorf("server messages %+v", m)
	}
}
