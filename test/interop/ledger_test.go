package interop_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/mailwire/mailwire/internal/conncount"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/interoptest"
	"github.com/mailwire/mailwire/middleware/retry"
	"github.com/mailwire/mailwire/transport"
)

// sweepMsg is one message of a ledger sweep.
type sweepMsg struct {
	id    string
	msg   []byte
	rcpts []string
	kinds []string
	res   *transport.Result
	err   error
}

// runConcurrently sends every message through tr with workers goroutines.
func runConcurrently(t *testing.T, tr transport.Transport, msgs []*sweepMsg, workers int, timeout time.Duration) {
	t.Helper()
	ctx := testCtx(t, timeout)
	work := make(chan *sweepMsg)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				m.res, m.err = tr.Send(ctx, envelope.New(sender, m.rcpts...), bytes.NewReader(m.msg))
			}
		}()
	}
	for _, m := range msgs {
		work <- m
	}
	close(work)
	wg.Wait()
}

// ledgerCounts returns, for the ledger entries carrying base, how many
// copies each (X-Test-ID, recipient) pair has, and the entries.
func ledgerCounts(t *testing.T, cfg *interoptest.Config, base string) (map[[2]string]int, []interoptest.LedgerEntry) {
	t.Helper()
	entries := interoptest.FilterLedger(interoptest.LedgerEntries(t, cfg), base)
	counts := make(map[[2]string]int)
	for _, e := range entries {
		for _, r := range e.RcptTos {
			counts[[2]string{e.XTestID, strings.ToLower(r)}]++
		}
	}
	return counts, entries
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkLedgerAgainstResults checks that every message ended delivered,
// refused, deferred or unknown; that the ledger holds no (message,
// recipient) pair twice; that every accepted pair is in the ledger and no
// refused or deferred one is; and that every stored copy is byte-exact.
func checkLedgerAgainstResults(t *testing.T, cfg *interoptest.Config, base string, msgs []*sweepMsg) (lost, dup int) {
	t.Helper()
	counts, entries := ledgerCounts(t, cfg, base)
	byID := make(map[string]*sweepMsg, len(msgs))
	for _, m := range msgs {
		byID[m.id] = m
	}
	for key, n := range counts {
		if n > 1 {
			dup += n - 1
			t.Errorf("ledger: %s delivered %d times to %s", key[0], n, key[1])
		}
		m, ok := byID[key[0]]
		if !ok {
			t.Errorf("ledger: unexpected message %s", key[0])
			continue
		}
		known := false
		for _, r := range m.rcpts {
			known = known || strings.EqualFold(r, key[1])
		}
		if !known {
			t.Errorf("ledger: %s delivered to %s, not one of its recipients", key[0], key[1])
		}
	}
	for _, e := range entries {
		if m, ok := byID[e.XTestID]; !ok || e.SHA256 != sha(normalize(m.msg)) {
			t.Errorf("ledger entry %d (%s): content differs from what was sent", e.N, e.XTestID)
		}
	}
	for _, m := range msgs {
		if m.res == nil || len(m.res.Rcpts) != len(m.rcpts) {
			t.Errorf("%s: Result %s, error %v", m.id, rcptSummary(m.res), m.err)
			continue
		}
		for i, rr := range m.res.Rcpts {
			n := counts[[2]string{m.id, strings.ToLower(m.rcpts[i])}]
			switch rr.Outcome {
			case transport.Accepted:
				if n != 1 {
					lost++
					t.Errorf("%s: %s accepted, but the ledger holds %d copies", m.id, rr.Addr, n)
				}
			case transport.PermFailed, transport.TempFailed:
				if n != 0 {
					t.Errorf("%s: %s %v, but the ledger holds %d copies", m.id, rr.Addr, rr.Outcome, n)
				}
			case transport.Unknown:
				// May or may not have been delivered; at most once (above).
			default:
				t.Errorf("%s: %s ended %v", m.id, rr.Addr, rr.Outcome)
			}
		}
	}
	return lost, dup
}

// TestLedgerSweep sends 100 messages with a mix of normal, flaky421-N,
// flaky451-N, tempfail and reject recipients through the retry middleware
// and a pooled SMTP transport, four at a time. Every recipient ends with
// the outcome its trigger calls for, and the ledger proves that no accepted
// message was lost and none was delivered twice.
func TestLedgerSweep(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	base := marker(t)
	extra := []string{"flaky421-1", "flaky451-1", "flaky451-3", "flaky421-2", "tempfail", "reject", "ok"}
	want := map[string]transport.Outcome{
		"ok": transport.Accepted, "flaky421-1": transport.Accepted, "flaky421-2": transport.Accepted,
		"flaky451-1": transport.Accepted, "flaky451-3": transport.Accepted,
		"tempfail": transport.TempFailed, "reject": transport.PermFailed,
	}
	const maxAttempts = 8
	msgs := make([]*sweepMsg, 100)
	for i := range msgs {
		id := fmt.Sprintf("%s-%03d", base, i)
		kinds := []string{"ok", extra[i%len(extra)]}
		if k := extra[(i/len(extra))%len(extra)]; k != kinds[1] && !(strings.HasPrefix(k, "flaky421") && strings.HasPrefix(kinds[1], "flaky421")) {
			kinds = append(kinds, k)
		}
		if i%3 == 1 {
			kinds[0], kinds[len(kinds)-1] = kinds[len(kinds)-1], kinds[0] // vary the order
		}
		m := &sweepMsg{id: id, kinds: kinds}
		for j, k := range kinds {
			m.rcpts = append(m.rcpts, fmt.Sprintf("%s-%s-%d@ledger.mailwire.test", k, id, j))
		}
		m.msg = message(id, m.rcpts[0], fmt.Sprintf("sweep %d", i), fmt.Sprintf("sweep message %d\r\n.\r\nbare LF\nend", i))
		msgs[i] = m
	}
	tr := ledgerTransport(t, cfg)
	rt := retry.New(retry.WithMaxAttempts(maxAttempts), retry.WithBackoff(retry.Exponential(2*time.Millisecond, 20*time.Millisecond)))(tr)
	start := time.Now()
	runConcurrently(t, rt, msgs, 4, 90*time.Second)
	t.Logf("sweep of %d messages took %v", len(msgs), time.Since(start))

	for _, m := range msgs {
		if m.res == nil || len(m.res.Rcpts) != len(m.kinds) {
			continue // reported by checkLedgerAgainstResults
		}
		for j, k := range m.kinds {
			rr := m.res.Rcpts[j]
			if rr.Outcome != want[k] {
				t.Errorf("%s: %s (%s) ended %v, want %v; %s", m.id, rr.Addr, k, rr.Outcome, want[k], rcptSummary(m.res))
			}
			if k == "tempfail" && rr.Attempts != maxAttempts {
				t.Errorf("%s: %s tried %d times, want %d", m.id, rr.Addr, rr.Attempts, maxAttempts)
			}
		}
		if (m.err == nil) != (m.res.Count(transport.Accepted) == len(m.kinds)) {
			t.Errorf("%s: error %v with %s", m.id, m.err, rcptSummary(m.res))
		}
	}
	lost, dup := checkLedgerAgainstResults(t, cfg, base, msgs)
	t.Logf("ledger sweep: %d messages, %d lost, %d duplicated", len(msgs), lost, dup)
}

// TestLedgerRetryStorm sends 1000 messages, each to a flaky421-1 recipient
// (the server answers 421 and closes the connection once, then accepts),
// through the retry middleware and a pooled SMTP transport limited to four
// connections, from eight goroutines. A counting dialer proves that no more
// than four connections are ever open at once, and the ledger that each
// message was delivered exactly once.
func TestLedgerRetryStorm(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	const (
		n        = 1000
		maxConns = 4
	)
	base := marker(t)
	msgs := make([]*sweepMsg, n)
	for i := range msgs {
		id := fmt.Sprintf("%s-%04d", base, i)
		rcpt := fmt.Sprintf("flaky421-1-%s@ledger.mailwire.test", id)
		msgs[i] = &sweepMsg{id: id, rcpts: []string{rcpt}, kinds: []string{"flaky421-1"},
			msg: message(id, rcpt, fmt.Sprintf("storm %d", i), fmt.Sprintf("storm message %d\r\n", i))}
	}
	var cc connCounter
	tr := ledgerTransport(t, cfg)
	tr.Dialer = cc.dialer()
	tr.Pool = transport.PoolConfig{MaxConns: maxConns}
	rt := retry.New(retry.WithMaxAttempts(4), retry.WithBackoff(retry.Exponential(time.Millisecond, 10*time.Millisecond)))(tr)
	start := time.Now()
	runConcurrently(t, rt, msgs, 8, 100*time.Second)
	t.Logf("storm of %d messages took %v over %d connections, at most %d open at once", n, time.Since(start), cc.Opened(), cc.Peak())

	if m := cc.Peak(); m > maxConns {
		t.Errorf("%d connections open at once, over the cap of %d", m, maxConns)
	}
	if m := cc.Peak(); m < 2 {
		t.Errorf("at most %d connection open at once: the storm did not run concurrently", m)
	}
	failed := 0
	for _, m := range msgs {
		if m.err != nil || m.res == nil || m.res.Count(transport.Accepted) != 1 {
			if failed++; failed <= 5 {
				t.Errorf("%s: error %v, %s", m.id, m.err, rcptSummary(m.res))
			}
			continue
		}
		if a := m.res.Rcpts[0].Attempts; a != 2 {
			if failed++; failed <= 5 {
				t.Errorf("%s: %d attempts, want 2 (one 421, one success)", m.id, a)
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d messages not delivered as expected", failed, n)
	}
	lost, dup := checkLedgerAgainstResults(t, cfg, base, msgs)
	counts, _ := ledgerCounts(t, cfg, base)
	if len(counts) != n {
		t.Errorf("ledger holds %d of the %d messages", len(counts), n)
	}
	t.Logf("retry storm: %d messages, %d lost, %d duplicated", n, lost, dup)
	tr.CloseIdleConnections()
	if o := cc.Open(); o != 0 {
		t.Errorf("%d connections still open after CloseIdleConnections", o)
	}
}

// TestLedgerPoolCapWhileClosing is the retry storm with connections whose
// Close takes a moment (as through a proxy): the pool must not count a
// connection as gone, and dial another, before the old one is closed, or
// more than MaxConns connections are open at once.
func TestLedgerPoolCapWhileClosing(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	const (
		n        = 120
		maxConns = 2
	)
	base := marker(t)
	msgs := make([]*sweepMsg, n)
	for i := range msgs {
		id := fmt.Sprintf("%s-%03d", base, i)
		rcpt := fmt.Sprintf("flaky421-1-%s@ledger.mailwire.test", id)
		msgs[i] = &sweepMsg{id: id, rcpts: []string{rcpt}, kinds: []string{"flaky421-1"},
			msg: message(id, rcpt, fmt.Sprintf("slow close %d", i), "slow close\r\n")}
	}
	cc := connCounter{conncount.Dialer{CloseDelay: 20 * time.Millisecond}}
	tr := ledgerTransport(t, cfg)
	tr.Dialer = cc.dialer()
	tr.Pool = transport.PoolConfig{MaxConns: maxConns}
	rt := retry.New(retry.WithMaxAttempts(4), retry.WithBackoff(constBackoff(5*time.Millisecond)))(tr)
	start := time.Now()
	runConcurrently(t, rt, msgs, 6, 60*time.Second)
	t.Logf("%d messages took %v over %d connections, at most %d open at once", n, time.Since(start), cc.Opened(), cc.Peak())
	if m := cc.Peak(); m > maxConns {
		t.Errorf("%d connections open at once, over the cap of %d", m, maxConns)
	}
	for _, m := range msgs {
		if m.err != nil {
			t.Errorf("%s: %v", m.id, m.err)
		}
	}
	lost, dup := checkLedgerAgainstResults(t, cfg, base, msgs)
	if lost != 0 || dup != 0 {
		t.Errorf("%d lost, %d duplicated", lost, dup)
	}
}

// TestLedgerSendBatchRecovers sends a batch to the ledger (no PIPELINING)
// in which one message's recipient makes the server answer 421 and close
// the connection: that message reports a transient failure, the rest of
// the batch continues on a new connection, and the ledger holds every other
// message once and that one not at all.
func TestLedgerSendBatchRecovers(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	var cc connCounter
	tr := ledgerTransport(t, cfg)
	tr.Dialer = cc.dialer()
	base := marker(t)
	const n, bad = 20, 7
	msgs := make([]*sweepMsg, n)
	for i := range msgs {
		id := fmt.Sprintf("%s-%02d", base, i)
		kind := "ok"
		if i == bad {
			kind = "flaky421-1"
		}
		rcpt := fmt.Sprintf("%s-%s@ledger.mailwire.test", kind, id)
		msgs[i] = &sweepMsg{id: id, rcpts: []string{rcpt}, kinds: []string{kind},
			msg: message(id, rcpt, "batch recovery", fmt.Sprintf("batch %d\r\n.\r\n", i))}
	}
	seq := func(yield func(transport.Message) bool) {
		for _, m := range msgs {
			if !yield(transport.Message{Envelope: envelope.New(sender, m.rcpts...), Body: bytes.NewReader(m.msg)}) {
				return
			}
		}
	}
	calls := 0
	err := tr.SendBatch(testCtx(t, time.Minute), seq, func(i int, res *transport.Result, err error) {
		if i != calls {
			t.Errorf("done(%d), want %d", i, calls)
		}
		calls++
		msgs[i].res, msgs[i].err = res, err
	})
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	if calls != n {
		t.Fatalf("done called %d times, want %d", calls, n)
	}
	for i, m := range msgs {
		want := transport.Accepted
		if i == bad {
			want = transport.TempFailed
		}
		if m.res == nil || len(m.res.Rcpts) != 1 || m.res.Rcpts[0].Outcome != want {
			t.Errorf("message %d: %s, want %v", i, rcptSummary(m.res), want)
		}
		if i == bad && !errors.Is(m.err, transport.ErrTransient) {
			t.Errorf("message %d: error %v, want a transient one", i, m.err)
		}
	}
	if c := cc.Opened(); c != 2 {
		t.Errorf("%d connections, want 2 (one cut by the 421)", c)
	}
	lost, dup := checkLedgerAgainstResults(t, cfg, base, msgs)
	counts, _ := ledgerCounts(t, cfg, base)
	if len(counts) != n-1 || lost != 0 || dup != 0 {
		t.Errorf("ledger holds %d messages (want %d), %d lost, %d duplicated", len(counts), n-1, lost, dup)
	}
}
