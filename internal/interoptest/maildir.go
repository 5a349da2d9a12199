package interoptest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// pollInterval is how often WaitMaildir and WaitLedger look again.
const pollInterval = 20 * time.Millisecond

var markerUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// Marker returns a string unique to this call, built from the test's name
// and random bytes, that is safe inside a Message-ID
// ("<"+marker+"@mailwire.test>"), an X-Test-ID header and an address's
// local part. Give every interop message one, and look only for it.
func Marker(t testing.TB) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("interoptest.Marker: %v", err)
	}
	name := markerUnsafe.ReplaceAllString(t.Name(), "-")
	name = strings.Trim(name, "-.")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return strings.ToLower(name) + "-" + hex.EncodeToString(b[:])
}

// MaildirMessages returns the contents of every message in the maildir dir
// (its new/ and cur/ folders) that contains marker, in file-name order. A
// missing maildir holds no messages. Messages are files written by the mail
// server's user with mode 0600: tests run as root read them.
func MaildirMessages(dir, marker string) ([][]byte, error) {
	var names []string
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.Type().IsRegular() {
				names = append(names, filepath.Join(dir, sub, e.Name()))
			}
		}
	}
	// A message moves from new/ to cur/ with a suffix; sort by the unique part.
	sort.Slice(names, func(i, j int) bool { return maildirKey(names[i]) < maildirKey(names[j]) })
	m := []byte(marker)
	var out [][]byte
	seen := make(map[string]bool)
	for _, name := range names {
		key := maildirKey(name)
		if seen[key] {
			continue
		}
		b, err := os.ReadFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue // moved from new/ to cur/ meanwhile; found again next time
		}
		if err != nil {
			return nil, err
		}
		if bytes.Contains(b, m) {
			seen[key] = true
			out = append(out, b)
		}
	}
	return out, nil
}

// maildirKey is a maildir file's unique name, without the ":2,flags" info.
func maildirKey(path string) string {
	base := filepath.Base(path)
	if i := strings.IndexByte(base, ':'); i >= 0 {
		base = base[:i]
	}
	return base
}

// MaildirCount returns how many messages in the maildir dir contain marker;
// 0 when the maildir does not exist or cannot be read.
func MaildirCount(dir, marker string) int {
	msgs, err := MaildirMessages(dir, marker)
	if err != nil {
		return 0
	}
	return len(msgs)
}

// WaitMaildir waits up to timeout for a message containing marker to appear
// in the maildir dir and returns its bytes as stored (LF line endings, with
// the headers the server prepended: see [StripAddedHeaders] and
// [CompareDelivered]). Delivery by Postfix and Dovecot is asynchronous, so
// poll rather than look once. It fails the test on timeout, or if more than
// one message carries the marker (a duplicate delivery).
func WaitMaildir(t testing.TB, dir, marker string, timeout time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs, err := MaildirMessages(dir, marker)
		if err != nil {
			t.Fatalf("interoptest.WaitMaildir(%s): %v", dir, err)
		}
		switch {
		case len(msgs) == 1:
			return msgs[0]
		case len(msgs) > 1:
			t.Fatalf("interoptest.WaitMaildir: %d messages with marker %q in %s, want 1", len(msgs), marker, dir)
		}
		if time.Now().After(deadline) {
			t.Fatalf("interoptest.WaitMaildir: no message with marker %q in %s after %v", marker, dir, timeout)
		}
		time.Sleep(pollInterval)
	}
}

// AssertNoMaildir fails the test if, after waiting for wait, any message in
// the maildir dir contains marker: use it to prove that a refused or aborted
// message was not delivered. Choose wait longer than a normal delivery
// (about a second here).
func AssertNoMaildir(t testing.TB, dir, marker string, wait time.Duration) {
	t.Helper()
	time.Sleep(wait)
	if n := MaildirCount(dir, marker); n != 0 {
		t.Fatalf("interoptest: %d messages with marker %q in %s, want none", n, marker, dir)
	}
}
