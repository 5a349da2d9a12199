// Package interop_test runs mailwire's transports, authenticators and
// middleware against the private interop servers that
// scripts/interop/start.sh runs on loopback: Postfix, Dovecot (LMTP and
// submission), the aiosmtpd delivery ledger and smtp-sink. Without servers
// the tests skip, unless MAILWIRE_INTEROP=1 (as in .ci/run), where they fail.
//
// Every message carries a unique marker (Message-ID and X-Test-ID), and each
// test looks only for its own messages: the servers are shared with every
// other package that `go test ./...` runs in parallel.
package interop_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/mailwire/mailwire/internal/conncount"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailwire/mailwire/dialer"
	"github.com/mailwire/mailwire/internal/interoptest"
	"github.com/mailwire/mailwire/transport"
)

const (
	// deliveryTimeout bounds the wait for Postfix or Dovecot to store a
	// message after the server accepted it.
	deliveryTimeout = 30 * time.Second
	// settleTime is how long a test waits, after its messages arrived, for
	// a duplicate or a smuggled second message to show up too.
	settleTime = 1500 * time.Millisecond
	// ehloName is the EHLO/LHLO name of every session.
	ehloName = "interop.mailwire.test"
	// sender is the reverse-path of most messages.
	sender = "sender@mailwire.test"
)

// testCtx returns a context that ends with the test or after d.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// syncBuffer is a goroutine-safe transcript sink for Debug.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// clientLines returns the lines the client wrote ("C: ..."), without the
// prefix.
func (s *syncBuffer) clientLines() []string {
	var out []string
	for _, l := range strings.Split(s.String(), "\n") {
		if c, ok := strings.CutPrefix(l, "C: "); ok {
			out = append(out, c)
		}
	}
	return out
}

// sentVerb reports whether the client wrote a command starting with verb
// (upper case, followed by a space or the end of the line).
func (s *syncBuffer) sentVerb(verb string) bool {
	for _, l := range s.clientLines() {
		if l == verb || strings.HasPrefix(l, verb+" ") || strings.HasPrefix(l, verb+":") {
			return true
		}
	}
	return false
}

// header returns the header block of a test message: every message carries
// its marker in Message-ID and X-Test-ID.
func header(id, to, subject string) string {
	return "From: Interop Sender <" + sender + ">\r\n" +
		"To: <" + to + ">\r\n" +
		"Subject: " + subject + "\r\n" +
		"Message-ID: <" + id + "@mailwire.test>\r\n" +
		"X-Test-ID: " + id + "\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n" +
		"\r\n"
}

// message returns a whole test message: header plus body, as given.
func message(id, to, subject, body string) []byte {
	return []byte(header(id, to, subject) + body)
}

// normalize is the test's own oracle of what an SMTP server stores for
// content sent through a conforming client: every bare CR and bare LF
// becomes CRLF, and CRLF is added at the end of content that does not end
// with a line end. It is written independently of the library's encoder.
func normalize(b []byte) []byte {
	var out bytes.Buffer
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\r':
			out.WriteString("\r\n")
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
		case '\n':
			out.WriteString("\r\n")
		default:
			out.WriteByte(b[i])
		}
	}
	if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\r\n")) {
		out.WriteString("\r\n")
	}
	return out.Bytes()
}

// expectDelivered waits for the one message carrying marker in the maildir
// dir and checks it is orig, as the client must have put it on the wire
// (normalised), apart from the header fields the server prepends. It fails
// the test on a second copy.
func expectDelivered(t *testing.T, dir, marker string, orig []byte) []byte {
	t.Helper()
	got := interoptest.WaitMaildir(t, dir, marker, deliveryTimeout)
	if err := interoptest.CompareDelivered(got, normalize(orig)); err != nil {
		t.Errorf("maildir %s, marker %s: %v", dir, marker, err)
	}
	return got
}

// expectCount fails the test unless the maildir dir holds exactly n
// messages carrying marker.
func expectCount(t *testing.T, dir, marker string, n int) {
	t.Helper()
	msgs, err := interoptest.MaildirMessages(dir, marker)
	if err != nil {
		t.Fatalf("reading maildir %s: %v", dir, err)
	}
	if len(msgs) != n {
		t.Errorf("maildir %s holds %d messages with marker %q, want %d", dir, len(msgs), marker, n)
	}
}

// maildirIndex reads every message in the maildir dir once and returns, for
// each id in ids, the messages whose header block holds "X-Test-ID: id".
// It suits tests that send many messages: one pass over the maildir instead
// of one per message.
func maildirIndex(t *testing.T, dir string, ids []string) map[string][][]byte {
	t.Helper()
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	out := make(map[string][][]byte)
	seen := make(map[string]bool)
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatalf("reading maildir %s: %v", dir, err)
		}
		for _, e := range entries {
			key, _, _ := strings.Cut(e.Name(), ":")
			if seen[key] {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err != nil {
				continue // moved from new/ to cur/ meanwhile
			}
			head := b
			if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
				head = b[:i+1]
			}
			const field = "\nX-Test-ID: "
			i := bytes.Index(head, []byte(field))
			if i < 0 {
				continue
			}
			rest := head[i+len(field):]
			id, _, _ := bytes.Cut(rest, []byte("\n"))
			if want[string(id)] {
				seen[key] = true
				out[string(id)] = append(out[string(id)], b)
			}
		}
	}
	return out
}

// waitMaildirAll waits until every id has arrived in the maildir dir and
// returns one copy of each; it fails on a duplicate or on timeout.
func waitMaildirAll(t *testing.T, dir string, ids []string, timeout time.Duration) map[string][]byte {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		idx := maildirIndex(t, dir, ids)
		var missing []string
		for _, id := range ids {
			switch n := len(idx[id]); {
			case n > 1:
				t.Fatalf("maildir %s: %d copies of %s, want 1", dir, n, id)
			case n == 0:
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			out := make(map[string][]byte, len(ids))
			for _, id := range ids {
				out[id] = idx[id][0]
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("maildir %s: %d of %d messages missing after %v, first %s", dir, len(missing), len(ids), timeout, missing[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// connCounter counts the connections of a transport's dialer.
type connCounter struct {
	conncount.Dialer
}

func (c *connCounter) dialer() dialer.Dialer {
	if c.Dialer.Dialer == nil {
		c.Dialer.Dialer = &net.Dialer{Timeout: 10 * time.Second}
	}
	return &c.Dialer
}

// deadAddr returns a loopback TCP address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// hostOf returns the host part of a "host:port" address.
func hostOf(t *testing.T, addr string) string {
	t.Helper()
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return h
}

// secretForms returns the forms in which secret could leak: itself, its
// base64 encoding, the base64 of a SASL PLAIN response carrying it, and the
// base64 characters that encode it whatever its offset in a longer encoded
// string.
func secretForms(user, secret string) []string {
	forms := []string{
		secret,
		base64.StdEncoding.EncodeToString([]byte(secret)),
		base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + secret)),
		base64.StdEncoding.EncodeToString([]byte(user + "\x00" + user + "\x00" + secret)),
	}
	for k := 0; k < 3; k++ {
		enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("\x00", k) + secret))
		from := (8*k + 5) / 6             // first character wholly inside the secret
		to := (8 * (k + len(secret))) / 6 // characters wholly inside it
		if to > from+8 && to <= len(enc) {
			forms = append(forms, enc[from:to])
		}
	}
	return forms
}

// assertNoSecret fails the test if any text holds a form of the secret.
func assertNoSecret(t *testing.T, user, secret string, texts map[string]string) {
	t.Helper()
	forms := secretForms(user, secret)
	names := make([]string, 0, len(texts))
	for name := range texts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, f := range forms {
			if strings.Contains(texts[name], f) {
				t.Errorf("%s contains the password (as %q)", name, f)
			}
		}
	}
}

// rcptSummary renders a Result for failure messages.
func rcptSummary(res *transport.Result) string {
	if res == nil {
		return "<nil Result>"
	}
	var b strings.Builder
	for i, r := range res.Rcpts {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %v", r.Addr, r.Outcome)
		if r.Reply != nil {
			fmt.Fprintf(&b, " (%v)", r.Reply)
		}
		if r.Err != nil {
			fmt.Fprintf(&b, " err=%v", r.Err)
		}
		fmt.Fprintf(&b, " attempts=%d", r.Attempts)
	}
	return b.String()
}

// wantRcpt describes the expected outcome of one recipient.
type wantRcpt struct {
	outcome  transport.Outcome
	code     int                    // reply code that decided it; 0: do not check
	enhanced transport.EnhancedCode // zero: do not check
	attempts int                    // 0: do not check
}

// checkResult compares res with want, one entry per recipient in order.
func checkResult(t *testing.T, res *transport.Result, addrs []string, want []wantRcpt) {
	t.Helper()
	if res == nil {
		t.Fatalf("nil Result")
	}
	if len(res.Rcpts) != len(want) {
		t.Fatalf("Result has %d recipients, want %d: %s", len(res.Rcpts), len(want), rcptSummary(res))
	}
	for i, w := range want {
		r := res.Rcpts[i]
		if r.Addr != addrs[i] {
			t.Errorf("Rcpts[%d].Addr = %q, want %q", i, r.Addr, addrs[i])
		}
		if r.Outcome != w.outcome {
			t.Errorf("%s: outcome %v, want %v (%s)", r.Addr, r.Outcome, w.outcome, rcptSummary(res))
			continue
		}
		if w.code != 0 {
			if r.Reply == nil {
				t.Errorf("%s: no Reply, want %d", r.Addr, w.code)
			} else if r.Reply.Code != w.code {
				t.Errorf("%s: reply %v, want code %d", r.Addr, r.Reply, w.code)
			}
		}
		if w.enhanced != (transport.EnhancedCode{}) && r.Reply != nil && r.Reply.EnhancedCode != w.enhanced {
			t.Errorf("%s: enhanced code %v, want %v", r.Addr, r.Reply.EnhancedCode, w.enhanced)
		}
		if w.outcome == transport.Accepted && r.Err != nil {
			t.Errorf("%s: accepted with error %v", r.Addr, r.Err)
		}
		if w.outcome != transport.Accepted && r.Err == nil {
			t.Errorf("%s: %v without an error", r.Addr, r.Outcome)
		}
		if w.attempts != 0 && r.Attempts != w.attempts {
			t.Errorf("%s: %d attempts, want %d", r.Addr, r.Attempts, w.attempts)
		}
	}
}

// addrsOf returns the addresses of recipients as given in the envelope.
func addrsOf(rs ...string) []string { return rs }

// marker returns a fresh marker for the test.
func marker(t *testing.T) string { return interoptest.Marker(t) }
