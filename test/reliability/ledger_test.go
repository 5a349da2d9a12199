package reliability_test

import (
	"bytes"
	"context"
	"fmt"
	"github.com/mailwire/mailwire/internal/conncount"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/faultproxy"
	"github.com/mailwire/mailwire/internal/interoptest"
	"github.com/mailwire/mailwire/middleware/retry"
	"github.com/mailwire/mailwire/transport"
)

// The delivery ledger: the aiosmtpd server of scripts/interop records every
// message it accepted (index.jsonl, written before its 250 reply). With the
// retry middleware on, no message may be lost and none delivered twice.
// These tests need the interop servers (scripts/interop/start.sh); they
// skip without them unless MAILWIRE_INTEROP=1.

// ledgerMessage is refMessage with the run's marker as Message-ID.
func ledgerMessage(marker string) string {
	return strings.Replace(refMessage, "<reference@mailwire.test>", "<"+marker+"@mailwire.test>", 1)
}

var ledgerRcpts = []string{"alice@ledger.test", "bob@ledger.test"}

func retrying(next transport.Transport) transport.Transport {
	return retry.New(
		retry.WithMaxAttempts(4),
		retry.WithBackoff(func(int) time.Duration { return 5 * time.Millisecond }),
		retry.WithMaxElapsed(20*time.Second),
	)(next)
}

// ledgerVerdict compares one run's Result with the ledger's copies.
func ledgerVerdict(res *transport.Result, counts []int) (lost, dup bool, why []string) {
	for k, n := range counts {
		if n > 1 {
			dup = true
			why = append(why, fmt.Sprintf("recipient %d delivered %d times", k, n))
		}
		if res == nil || k >= len(res.Rcpts) {
			continue
		}
		switch o := res.Rcpts[k].Outcome; {
		case o == transport.Accepted && n == 0:
			lost = true
			why = append(why, fmt.Sprintf("recipient %d accepted but not in the ledger", k))
		case (o == transport.TempFailed || o == transport.PermFailed) && n > 0:
			lost = true
			why = append(why, fmt.Sprintf("recipient %d reported %v but in the ledger", k, o))
		case o == transport.NotAttempted:
			why = append(why, fmt.Sprintf("recipient %d not attempted", k))
		}
	}
	return lost, dup, why
}

var (
	figLedgerRuns = newFigure("ledger-runs-consistent")
	ledgerLost    atomic.Int64
	ledgerDup     atomic.Int64
)

// TestLedgerCutSweep cuts the first connection of each Send to the ledger
// after every byte of a reference session, in both directions, with the
// retry middleware on: the later attempts go through. Every message must
// end in the ledger once (accepted, or unknown and delivered), or not at
// all (unknown and not delivered, or failed), never twice.
func TestLedgerCutSweep(t *testing.T) {
	cfg := interoptest.Env(t)
	base := interoptest.Marker(t)
	// The reference session, to know the lengths.
	p, err := faultproxy.Start(faultproxy.Config{Target: cfg.LedgerSMTP})
	if err != nil {
		t.Fatal(err)
	}
	tr := &transport.SMTP{Addr: p.Addr(), Security: transport.Plaintext, LocalName: localName}
	r := send(tr, runDeadline, envelope.New(fromAddr, ledgerRcpts...), ledgerMessage(base+"-ref"))
	p.Close()
	if r.err != nil {
		t.Fatalf("reference: %v", r.err)
	}
	ci, _ := p.Conn(0)
	stride := int64(1)
	if v, err := strconv.Atoi(os.Getenv("MAILWIRE_SWEEP_STRIDE")); err == nil && v > 0 {
		stride = int64(v)
	}
	type run struct {
		marker string
		pt     faultproxy.Point
		res    *transport.Result
		err    error
	}
	var runs []run
	for _, dir := range []faultproxy.Dir{faultproxy.Down, faultproxy.Up} {
		total := int64(len(ci.Forwarded[dir]))
		for n := int64(0); n <= total; n += stride {
			marker := fmt.Sprintf("%s-%d-%05d", base, dir, n)
			p, err := faultproxy.Start(faultproxy.Config{Target: cfg.LedgerSMTP, Cut: &faultproxy.Point{Dir: dir, N: n}, FaultConns: 1})
			if err != nil {
				t.Fatal(err)
			}
			inner := &transport.SMTP{Addr: p.Addr(), Security: transport.Plaintext, LocalName: localName}
			tr := retrying(inner)
			r := send(tr, 10*time.Second, envelope.New(fromAddr, ledgerRcpts...), ledgerMessage(marker))
			transport.CloseIdleConnections(inner)
			p.Close()
			if r.panic != nil {
				t.Fatalf("panic: %v", r.panic)
			}
			runs = append(runs, run{marker, faultproxy.Point{Dir: dir, N: n}, r.res, r.err})
		}
	}
	time.Sleep(500 * time.Millisecond) // let the ledger finish what it was writing
	entries := interoptest.LedgerEntries(t, cfg)
	lost, dup := 0, 0
	for _, rn := range runs {
		counts := make([]int, len(ledgerRcpts))
		for k, a := range ledgerRcpts {
			counts[k] = exactCount(entries, rn.marker, a)
		}
		l, d, why := ledgerVerdict(rn.res, counts)
		figLedgerRuns.add(len(why) == 0)
		if l {
			lost++
		}
		if d {
			dup++
		}
		if len(why) > 0 {
			t.Errorf("cut %v after %d: %s (result %s, err %v)", rn.pt.Dir, rn.pt.N, strings.Join(why, "; "), describe(rn.res), rn.err)
		}
	}
	ledgerLost.Add(int64(lost))
	ledgerDup.Add(int64(dup))
	t.Logf("FIGURE ledger-cut-sweep-lost %d/%d", lost, len(runs))
	t.Logf("FIGURE ledger-cut-sweep-duplicated %d/%d", dup, len(runs))
	figLedgerRuns.log(t)
}

// TestLedgerRetryStorm sends a thousand messages (MAILWIRE_STORM_N) from
// many goroutines through a pool capped at a few connections, each message
// to a recipient the ledger answers with 421 and a closed connection twice
// before accepting: the client must stay under the cap and deliver each
// message exactly once.
func TestLedgerRetryStorm(t *testing.T) {
	cfg := interoptest.Env(t)
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("MAILWIRE_STORM_N")); err == nil && v > 0 {
		n = v
	}
	const maxConns, workers = 4, 16
	base := interoptest.Marker(t)
	d := &conncount.Dialer{}
	inner := &transport.SMTP{Addr: cfg.LedgerSMTP, Security: transport.Plaintext, LocalName: localName, Dialer: d}
	inner.Pool.MaxConns = maxConns
	tr := retry.New(
		retry.WithMaxAttempts(6),
		retry.WithBackoff(retry.Exponential(2*time.Millisecond, 50*time.Millisecond)),
		retry.WithMaxElapsed(2*time.Minute),
	)(inner)
	type outcome struct {
		res *transport.Result
		err error
	}
	results := make([]outcome, n)
	jobs := make(chan int)
	var wg sync.WaitGroup
	begin := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				rcpt := fmt.Sprintf("flaky421-2-%s-%d@ledger.test", base, i)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				res, err := tr.Send(ctx, envelope.New(fromAddr, rcpt), strings.NewReader(ledgerMessage(fmt.Sprintf("%s-%d", base, i))))
				cancel()
				results[i] = outcome{res, err}
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	took := time.Since(begin)
	transport.CloseIdleConnections(inner)
	time.Sleep(300 * time.Millisecond)
	entries := interoptest.LedgerEntries(t, cfg)
	lost, dup, accepted := 0, 0, 0
	for i, o := range results {
		rcpt := fmt.Sprintf("flaky421-2-%s-%d@ledger.test", base, i)
		c := exactCount(entries, fmt.Sprintf("%s-%d", base, i), rcpt)
		l, dp, why := ledgerVerdict(o.res, []int{c})
		if l {
			lost++
		}
		if dp {
			dup++
		}
		if o.err == nil {
			accepted++
		}
		if len(why) > 0 || o.err != nil {
			t.Errorf("message %d: %s (err %v)", i, strings.Join(why, "; "), o.err)
		}
	}
	ledgerLost.Add(int64(lost))
	ledgerDup.Add(int64(dup))
	if m := d.Peak(); m > maxConns {
		t.Errorf("%d connections open at once, cap %d", m, maxConns)
	}
	t.Logf("FIGURE ledger-storm-delivered-once %d/%d", accepted-dup, n)
	t.Logf("FIGURE ledger-storm-lost %d duplicated %d", lost, dup)
	t.Logf("FIGURE ledger-storm-peak-connections %d (cap %d), %d dials, %v", d.Peak(), maxConns, d.Opened(), took.Round(time.Millisecond))
}

// TestInteropSmuggling sends every smuggling body with DATA (CHUNKING
// disabled) to the ledger (aiosmtpd) and to Postfix, and checks that each
// arrives once, whole, and that the smuggled second message does not.
func TestInteropSmuggling(t *testing.T) {
	cfg := interoptest.Env(t)
	base := interoptest.Marker(t)
	type sent struct {
		name, marker, body string
	}
	var ledger, postfix []sent
	for i, sm := range smuggling {
		if sm.body == "" || sm.body == "." {
			continue // no header to carry the marker
		}
		marker := fmt.Sprintf("%s-%03d", base, i)
		// The marker goes in a header of the first message; the smuggled
		// part carries marker-smuggled.
		inner := sm.body
		if !strings.HasPrefix(inner, "Subject:") {
			inner = "Subject: x\r\n\r\n" + inner
		}
		body := "X-Test-ID: " + marker + "\r\nMessage-ID: <" + marker + "@mailwire.test>\r\n" +
			strings.ReplaceAll(inner, "Subject: smuggled", "Subject: smuggled\r\nX-Test-ID: "+marker+"-smuggled\r\nMessage-ID: <"+marker+"-smuggled@mailwire.test>")
		body = strings.ReplaceAll(body, "victim@example.org", cfg.Alice.Address(cfg.Domain))
		// To the ledger.
		tr := &transport.SMTP{Addr: cfg.LedgerSMTP, Security: transport.Plaintext, LocalName: localName, DisableChunking: true}
		if r := send(tr, runDeadline, envelope.New(fromAddr, "carol@ledger.test"), body); r.err != nil {
			attack(t, "interop-smuggling-ledger "+sm.name, []string{fmt.Sprintf("send: %v", r.err)})
		} else {
			ledger = append(ledger, sent{sm.name, marker, body})
		}
		// To Postfix, over STARTTLS.
		ptr := &transport.SMTP{Addr: cfg.PostfixSMTP, Security: transport.StartTLS, TLSConfig: cfg.TLSConfig(), LocalName: localName, DisableChunking: true}
		if r := send(ptr, 10*time.Second, envelope.New(fromAddr, cfg.Alice.Address(cfg.Domain)), body); r.err != nil {
			attack(t, "interop-smuggling-postfix "+sm.name, []string{fmt.Sprintf("send: %v", r.err)})
		} else {
			postfix = append(postfix, sent{sm.name, marker, body})
		}
	}
	time.Sleep(500 * time.Millisecond)
	entries := interoptest.LedgerEntries(t, cfg)
	for _, s := range ledger {
		var p []string
		got := exactEntries(entries, s.marker)
		got = append(got, exactEntries(entries, s.marker+"-smuggled")...)
		var whole, smuggled int
		for _, e := range got {
			if strings.HasSuffix(e.XTestID, "-smuggled") || strings.Contains(e.MessageID, "-smuggled") {
				smuggled++
				continue
			}
			whole++
			if b := interoptest.LedgerMessage(t, cfg, e); !bytes.Equal(b, normalizeCRLF(s.body)) {
				p = append(p, fmt.Sprintf("stored %q, want %q", b, normalizeCRLF(s.body)))
			}
		}
		if whole != 1 || smuggled != 0 {
			p = append(p, fmt.Sprintf("%d copies and %d smuggled messages", whole, smuggled))
		}
		attack(t, "interop-smuggling-ledger "+s.name, p)
	}
	dir := cfg.VirtualMaildir(cfg.Alice.Name)
	deadline := time.Now().Add(20 * time.Second)
	for _, s := range postfix {
		var p []string
		var msgs [][]byte
		for {
			msgs, _ = interoptest.MaildirMessages(dir, s.marker)
			if len(msgs) > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		whole, smuggled := 0, 0
		for _, m := range msgs {
			if bytes.Contains(m, []byte(s.marker+"-smuggled")) && !bytes.Contains(m, []byte("X-Test-ID: "+s.marker+"\n")) {
				smuggled++
				continue
			}
			whole++
			if err := interoptest.CompareDelivered(m, normalizeCRLF(s.body)); err != nil {
				p = append(p, err.Error())
			}
		}
		if whole != 1 || smuggled != 0 {
			p = append(p, fmt.Sprintf("%d copies and %d smuggled messages in %s", whole, smuggled, dir))
		}
		attack(t, "interop-smuggling-postfix "+s.name, p)
	}
}

// exactEntries returns the ledger entries whose Message-ID is exactly the
// marker's (interoptest's filters match substrings).
func exactEntries(entries []interoptest.LedgerEntry, marker string) []interoptest.LedgerEntry {
	var out []interoptest.LedgerEntry
	for _, e := range entries {
		if e.MessageID == "<"+marker+"@mailwire.test>" {
			out = append(out, e)
		}
	}
	return out
}

// exactCount counts the copies of the marker's message accepted for rcpt.
func exactCount(entries []interoptest.LedgerEntry, marker, rcpt string) int {
	n := 0
	for _, e := range exactEntries(entries, marker) {
		if e.HasRcpt(rcpt) {
			n++
		}
	}
	return n
}

// normalizeCRLF is what a server stores for body: bare CR and LF made CRLF,
// a final line ending added.
func normalizeCRLF(body string) []byte {
	var b bytes.Buffer
	for i := 0; i < len(body); i++ {
		switch c := body[i]; c {
		case '\r':
			b.WriteString("\r\n")
			if i+1 < len(body) && body[i+1] == '\n' {
				i++
			}
		case '\n':
			b.WriteString("\r\n")
		default:
			b.WriteByte(c)
		}
	}
	if b.Len() > 0 && !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// TestInteropBadTLS: Postfix listeners with a certificate from an untrusted
// CA, an expired one, one for another name, and TLS 1.0/1.1 only; the
// client must refuse each before anything else is sent.
func TestInteropBadTLS(t *testing.T) {
	cfg := interoptest.Env(t)
	for _, l := range []struct{ name, addr string }{
		{"untrusted", cfg.PostfixUntrustedCertSMTP}, {"expired", cfg.PostfixExpiredCertSMTP},
		{"wrong-host", cfg.PostfixWrongHostCertSMTP}, {"old-tls", cfg.PostfixOldTLSSMTP},
	} {
		if l.addr == "" {
			continue
		}
		p, err := faultproxy.Start(faultproxy.Config{Target: l.addr})
		if err != nil {
			t.Fatal(err)
		}
		tc := cfg.TLSConfig()
		tr := &transport.SMTP{Addr: p.Addr(), Security: transport.StartTLS, TLSConfig: tc, LocalName: localName}
		r := send(tr, 10*time.Second, envelope.New(fromAddr, cfg.Alice.Address(cfg.Domain)), refMessage)
		p.Close()
		ci, _ := p.Conn(0)
		probs := tlsRefused(r, faultproxy.ConnInfo{}, 0)
		up := string(ci.Received[faultproxy.Up])
		if i := strings.Index(up, "STARTTLS\r\n"); i < 0 {
			probs = append(probs, fmt.Sprintf("no STARTTLS sent: %q", up))
		}
		attack(t, "interop-tls "+l.name, probs)
	}
}
