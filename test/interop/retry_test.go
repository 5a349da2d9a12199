package interop_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/interoptest"
	"github.com/mailwire/mailwire/middleware/retry"
	"github.com/mailwire/mailwire/transport"
)

// constBackoff waits d between attempts.
func constBackoff(d time.Duration) retry.Backoff { return func(int) time.Duration { return d } }

// TestRetryPostfixTempfail sends to alice and to tempfail@ (450 at every
// RCPT) through the retry middleware: tempfail@ is tried three times, alone
// after the first, and alice receives exactly one copy.
func TestRetryPostfixTempfail(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	alice := cfg.Alice.Address(cfg.Domain)
	for _, body := range []string{"seekable", "reopener"} {
		for _, chunking := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/chunking=%v", body, chunking), func(t *testing.T) {
				t.Parallel()
				var debug syncBuffer
				tr := plainPostfix(t, cfg, &debug)
				tr.DisableChunking = !chunking
				var notified atomic.Int64
				rt := retry.New(
					retry.WithMaxAttempts(3),
					retry.WithBackoff(constBackoff(50*time.Millisecond)),
					retry.WithNotify(func(int, error, time.Duration) { notified.Add(1) }),
				)(tr)
				id := marker(t)
				msg := message(id, alice, "retry tempfail", "exactly one copy\r\n.\r\n")
				var r io.Reader = bytes.NewReader(msg)
				var opens atomic.Int64
				if body == "reopener" {
					r = retry.ReopenFunc(func() (io.Reader, error) {
						opens.Add(1)
						return struct{ io.Reader }{bytes.NewReader(msg)}, nil
					})
				}
				rcpts := addrsOf(alice, cfg.TempfailRcpt)
				res, err := rt.Send(testCtx(t, time.Minute), envelope.New(sender, rcpts...), r)
				checkResult(t, res, rcpts, []wantRcpt{
					{outcome: transport.Accepted, code: 250, attempts: 1},
					{outcome: transport.TempFailed, code: 450, enhanced: transport.EnhancedCode{4, 2, 0}, attempts: 3},
				})
				if !errors.Is(err, retry.ErrMaxAttempts) || !errors.Is(err, transport.ErrTransient) {
					t.Errorf("error %v, want ErrMaxAttempts and ErrTransient", err)
				}
				if n := notified.Load(); n != 2 {
					t.Errorf("notify called %d times, want 2", n)
				}
				if body == "reopener" && opens.Load() < 1 {
					t.Errorf("the body was reopened %d times", opens.Load())
				}
				// alice is in the first transaction only.
				mails := 0
				for _, l := range debug.clientLines() {
					if l == "RCPT TO:<"+alice+">" {
						mails++
					}
				}
				if mails != 1 {
					t.Errorf("alice was in %d RCPTs, want 1:\n%s", mails, debug.String())
				}
				expectDelivered(t, cfg.VirtualMaildir("alice"), id, msg)
				time.Sleep(settleTime)
				expectCount(t, cfg.VirtualMaildir("alice"), id, 1)
			})
		}
	}
}

// ledgerTransport returns an SMTP transport to the ledger.
func ledgerTransport(t *testing.T, cfg *interoptest.Config) *transport.SMTP {
	t.Helper()
	tr := &transport.SMTP{Addr: cfg.LedgerSMTP, Security: transport.Plaintext, LocalName: ehloName}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// checkLedgerCopy checks that the ledger stored msg byte-exact (CRLF,
// dot-unstuffed) for the entry.
func checkLedgerCopy(t *testing.T, cfg *interoptest.Config, e interoptest.LedgerEntry, msg []byte) {
	t.Helper()
	if got := interoptest.LedgerMessage(t, cfg, e); !bytes.Equal(got, normalize(msg)) {
		t.Errorf("ledger entry %d: %v", e.N, interoptest.CompareDelivered(got, normalize(msg)))
	}
}

// TestRetryLedger sends to a normal recipient beside flaky ones through the
// retry middleware: flaky451-2 is accepted at the third attempt, flaky421-1
// after the server closed the first connection; the ledger records each
// recipient exactly once.
func TestRetryLedger(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	cases := []struct {
		name     string
		kinds    []string
		attempts []int
		entries  int
		tls      bool
	}{
		{"flaky451-2", []string{"ok", "flaky451-2"}, []int{1, 3}, 2, true},
		{"flaky421-1", []string{"ok", "flaky421-1"}, []int{2, 2}, 1, false},
		{"flaky421-1-first", []string{"flaky421-1", "ok", "flaky451-1"}, []int{2, 2, 3}, 2, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := ledgerTransport(t, cfg)
			if tc.tls {
				a, err := auth.New("PLAIN", aliceCreds(t, cfg, cfg.LedgerSMTP))
				if err != nil {
					t.Fatal(err)
				}
				tr.Security, tr.TLSConfig, tr.Auth = transport.StartTLS, cfg.TLSConfig(), a
			}
			rt := retry.New(retry.WithMaxAttempts(4), retry.WithBackoff(constBackoff(20*time.Millisecond)))(tr)
			id := marker(t)
			var rcpts []string
			var want []wantRcpt
			for i, k := range tc.kinds {
				rcpts = append(rcpts, fmt.Sprintf("%s-%s-%d@ledger.mailwire.test", k, id, i))
				want = append(want, wantRcpt{outcome: transport.Accepted, code: 250, attempts: tc.attempts[i]})
			}
			msg := message(id, rcpts[0], "retry "+tc.name, "ledger copy\r\n.\r\nbare LF\n")
			res, err := rt.Send(testCtx(t, time.Minute), envelope.New(sender, rcpts...), bytes.NewReader(msg))
			if err != nil {
				t.Fatalf("Send: %v (%s)", err, rcptSummary(res))
			}
			checkResult(t, res, rcpts, want)
			entries := interoptest.FilterLedger(interoptest.LedgerEntries(t, cfg), id)
			if len(entries) != tc.entries {
				t.Errorf("%d ledger entries, want %d", len(entries), tc.entries)
			}
			for _, r := range rcpts {
				if n := interoptest.LedgerCount(entries, id, r); n != 1 {
					t.Errorf("ledger holds %d copies for %s, want 1", n, r)
				}
			}
			for _, e := range entries {
				checkLedgerCopy(t, cfg, e, msg)
				if e.TLS != tc.tls {
					t.Errorf("entry %d: TLS %v, want %v", e.N, e.TLS, tc.tls)
				}
				if tc.tls && e.Auth != cfg.Alice.Name {
					t.Errorf("entry %d: auth %q, want %q", e.N, e.Auth, cfg.Alice.Name)
				}
			}
		})
	}
}
