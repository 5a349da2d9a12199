package interoptest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mkMaildir makes a maildir with new/, cur/ and tmp/ under a temporary directory.
func mkMaildir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "alice")
	for _, sub := range []string{"new", "cur", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestMaildirMessages(t *testing.T) {
	dir := mkMaildir(t)
	writeFile(t, filepath.Join(dir, "new", "1.a.host"), "Message-ID: <m1@x>\n\nbody one\n")
	writeFile(t, filepath.Join(dir, "cur", "2.b.host:2,S"), "Message-ID: <m2@x>\n\nbody two\n")
	writeFile(t, filepath.Join(dir, "cur", "3.c.host:2,"), "Message-ID: <m1@x>\n\nagain\n")
	writeFile(t, filepath.Join(dir, "tmp", "4.d.host"), "Message-ID: <m1@x>\n\nnot delivered yet\n")

	got, err := MaildirMessages(dir, "<m1@x>")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !strings.Contains(string(got[0]), "body one") || !strings.Contains(string(got[1]), "again") {
		t.Fatalf("MaildirMessages(m1) = %q", got)
	}
	if n := MaildirCount(dir, "<m2@x>"); n != 1 {
		t.Errorf("MaildirCount(m2) = %d, want 1", n)
	}
	if n := MaildirCount(dir, "absent"); n != 0 {
		t.Errorf("MaildirCount(absent) = %d", n)
	}
	if n := MaildirCount(filepath.Join(dir, "nope"), "<m1@x>"); n != 0 {
		t.Errorf("MaildirCount(missing maildir) = %d", n)
	}
}

func TestMaildirSameMessageInNewAndCur(t *testing.T) {
	// A reader may see a message in new/ and, after it was moved, in cur/:
	// it is one message.
	dir := mkMaildir(t)
	writeFile(t, filepath.Join(dir, "new", "7.x.host"), "X-Test-ID: k\n\nb\n")
	writeFile(t, filepath.Join(dir, "cur", "7.x.host:2,S"), "X-Test-ID: k\n\nb\n")
	if n := MaildirCount(dir, "X-Test-ID: k"); n != 1 {
		t.Errorf("MaildirCount = %d, want 1", n)
	}
}

func TestWaitMaildir(t *testing.T) {
	dir := mkMaildir(t)
	go func() {
		time.Sleep(100 * time.Millisecond)
		tmp := filepath.Join(dir, "tmp", "9.late.host")
		if err := os.WriteFile(tmp, []byte("X-Test-ID: late\n\nhello\n"), 0o600); err == nil {
			_ = os.Rename(tmp, filepath.Join(dir, "new", "9.late.host"))
		}
	}()
	got := WaitMaildir(t, dir, "X-Test-ID: late", 5*time.Second)
	if string(got) != "X-Test-ID: late\n\nhello\n" {
		t.Errorf("WaitMaildir = %q", got)
	}
}

func TestWaitMaildirFailures(t *testing.T) {
	dir := mkMaildir(t)
	f := runFake(t, func(tb testing.TB) { WaitMaildir(tb, dir, "never", 50*time.Millisecond) })
	if !f.failed || !strings.Contains(f.msg, "no message") {
		t.Errorf("timeout: failed=%v msg=%q", f.failed, f.msg)
	}
	writeFile(t, filepath.Join(dir, "new", "1.a.host"), "X-Test-ID: dup\n\n1\n")
	writeFile(t, filepath.Join(dir, "new", "2.b.host"), "X-Test-ID: dup\n\n2\n")
	f = runFake(t, func(tb testing.TB) { WaitMaildir(tb, dir, "X-Test-ID: dup", time.Second) })
	if !f.failed || !strings.Contains(f.msg, "2 messages") {
		t.Errorf("duplicate: failed=%v msg=%q", f.failed, f.msg)
	}
	f = runFake(t, func(tb testing.TB) { AssertNoMaildir(tb, dir, "X-Test-ID: dup", 0) })
	if !f.failed {
		t.Error("AssertNoMaildir passed with two copies present")
	}
	f = runFake(t, func(tb testing.TB) { AssertNoMaildir(tb, dir, "absent", 0) })
	if f.failed {
		t.Errorf("AssertNoMaildir failed: %s", f.msg)
	}
}

func TestMarker(t *testing.T) {
	a, b := Marker(t), Marker(t)
	if a == b {
		t.Fatalf("Marker returned %q twice", a)
	}
	if !strings.HasPrefix(a, "testmarker-") {
		t.Errorf("Marker = %q, want the test name first", a)
	}
	if strings.ContainsAny(a, " <>@/\"\\") {
		t.Errorf("Marker %q has characters unsafe in a Message-ID or local part", a)
	}
	t.Run("sub test/with spaces", func(t *testing.T) {
		if m := Marker(t); strings.ContainsAny(m, " /") {
			t.Errorf("Marker = %q", m)
		}
	})
}
