package reliability_test

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailwire/mailwire/internal/faultproxy"
	"github.com/mailwire/mailwire/internal/scripted"
	"github.com/mailwire/mailwire/transport"
)

// Reproductions of client bugs found by the sweeps, one test each, kept as
// regression tests now that the bugs are fixed. A new bug found by a sweep
// gets a test here and, while it is open, an entry in knownBugs
// (harness_test.go) so the sweeps count it instead of failing.

// autoServer starts scripted.Auto with the answer hook for one test.
func autoServer(t *testing.T, opts scripted.Options, cfg scripted.AutoConfig) *scripted.Server {
	t.Helper()
	s, err := scripted.StartWith(opts, scripted.Auto(cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func answerFirst(verb string, r scripted.Response) func(scripted.Command) scripted.Response {
	return func(c scripted.Command) scripted.Response {
		if c.Verb == verb && c.N == 1 && c.Conn == 0 {
			return r
		}
		return scripted.Response{}
	}
}

// TestData2yzNamesData: a 2yz reply to DATA (where 354 is due) is a
// protocol error of the DATA step; the error must name step data.
func TestData2yzNamesData(t *testing.T) {
	s := autoServer(t, scripted.Options{}, scripted.AutoConfig{Caps: scripted.Caps("PIPELINING", "8BITMIME"),
		Answer: answerFirst("DATA", scripted.Response{Text: scripted.Lines("250 2.0.0 fine")})})
	tr := &transport.SMTP{Addr: s.Addr, Security: transport.Plaintext, LocalName: localName}
	r := send(tr, runDeadline, refEnvelope(), refMessage)
	oe := opError(r.err)
	if oe == nil || oe.Op != transport.OpData {
		t.Fatalf("err = %v, want an *OpError at step data", r.err)
	}
	if !errors.Is(r.err, transport.ErrTransient) || r.res.Count(transport.TempFailed) != len(rcptAddrs) {
		t.Errorf("err %v, result %s: want transient, every recipient temp-failed", r.err, describe(r.res))
	}
}

// TestLMTP421LaterRecipientsUnknown: over LMTP, the server answers
// the end of the data once per recipient; a 421 for the first recipient
// ends the session before the second recipient's reply. That recipient may
// have been delivered already (the server has the whole message): its
// outcome is unknown (RFC 1047), not temp-failed, or a retry duplicates it.
func TestLMTP421LaterRecipientsUnknown(t *testing.T) {
	s := autoServer(t, scripted.Options{}, scripted.AutoConfig{LMTP: true, Caps: scripted.Caps("PIPELINING"),
		Answer: answerFirst(".", scripted.Response{Text: scripted.Lines("421 4.3.2 shutting down"), Close: true})})
	tr := &transport.LMTP{Addr: s.Addr, LocalName: localName}
	r := send(tr, runDeadline, refEnvelope(), refMessage)
	if r.res == nil {
		t.Fatalf("no result: %v", r.err)
	}
	if got := r.res.Rcpts[0].Outcome; got != transport.TempFailed {
		t.Errorf("first recipient (421): %v, want temp-failed", got)
	}
	if got := r.res.Rcpts[1].Outcome; got != transport.Unknown {
		t.Errorf("second recipient (no reply): %v, want unknown", got)
	}
}

// TestAllRecipientsRefusedIsOpErrorAtRcpt: when every RCPT is refused with 550 the
// transaction failed as a whole, permanently. With DATA pipelined (no
// CHUNKING) Send returns "transport: mail ...: use of closed network
// connection", an *OpError at step mail that matches ErrTransient: a retry
// policy that looks at the error retries a message every recipient refused.
// With BDAT the error is Result.Err's aggregate, while the OpRcpt
// documentation ("every recipient refused") and the Transport contract
// (whole transaction failed: an *OpError naming the step) promise an
// *OpError at step rcpt.
func TestAllRecipientsRefusedIsOpErrorAtRcpt(t *testing.T) {
	for _, caps := range []scripted.Capabilities{scripted.Caps("PIPELINING", "8BITMIME"), scripted.Caps("PIPELINING", "8BITMIME", "CHUNKING")} {
		t.Run(strings.Join(caps, "+"), func(t *testing.T) {
			s := autoServer(t, scripted.Options{}, scripted.AutoConfig{Caps: caps,
				Answer: func(c scripted.Command) scripted.Response {
					if c.Verb == "RCPT" {
						return scripted.Response{Text: scripted.Lines("550 5.1.1 no such user")}
					}
					return scripted.Response{}
				}})
			tr := &transport.SMTP{Addr: s.Addr, Security: transport.Plaintext, LocalName: localName}
			r := send(tr, runDeadline, refEnvelope(), refMessage)
			if errors.Is(r.err, transport.ErrTransient) {
				t.Errorf("err %v matches ErrTransient although every recipient was refused with 550", r.err)
			}
			if !errors.Is(r.err, transport.ErrPermanent) {
				t.Errorf("err %v is not permanent", r.err)
			}
			if oe := opError(r.err); oe == nil || oe.Op != transport.OpRcpt {
				t.Errorf("err = %T %v, want an *OpError at step rcpt", r.err, r.err)
			}
		})
	}
}

// TestQuitHonoursDeadline: without pooling, Send sends QUIT after the
// transaction; a server that never answers it must not hold Send past the
// caller's deadline. (A bug found by the stall sweep, fixed since; kept as
// a regression test.)
func TestQuitHonoursDeadline(t *testing.T) {
	s := autoServer(t, scripted.Options{}, scripted.AutoConfig{Caps: scripted.Caps("PIPELINING", "8BITMIME"),
		Answer: answerFirst("QUIT", scripted.Response{Stall: true})})
	tr := &transport.SMTP{Addr: s.Addr, Security: transport.Plaintext, LocalName: localName}
	tr.Pool.MaxIdleConns = -1
	r := send(tr, time.Second, refEnvelope(), refMessage)
	if r.err != nil {
		t.Fatalf("Send: %v", r.err)
	}
	if r.elapsed > time.Second+runSlack {
		t.Errorf("Send took %v with a 1s deadline", r.elapsed)
	}
}

// TestCloseIdleDoesNotWaitForQuit: closing idle connections must not wait
// for a server that never answers QUIT (it waited 10 s for each, one after
// the other; fixed since, kept as a regression test).
func TestCloseIdleDoesNotWaitForQuit(t *testing.T) {
	s := autoServer(t, scripted.Options{}, scripted.AutoConfig{Caps: scripted.Caps("PIPELINING", "8BITMIME"),
		Answer: answerFirst("QUIT", scripted.Response{Stall: true})})
	tr := &transport.SMTP{Addr: s.Addr, Security: transport.Plaintext, LocalName: localName}
	r := send(tr, time.Second, refEnvelope(), refMessage)
	if r.err != nil {
		t.Fatalf("Send: %v", r.err)
	}
	if r.closeIdle > runSlack {
		t.Errorf("CloseIdleConnections took %v", r.closeIdle)
	}
}

// TestUnexpected3yzNotPermanent: a 3yz reply where none is due (354 to
// MAIL) is a protocol error: temporary, and the connection is dropped. It
// must not make the recipients permanently failed (as the engine before
// the pipeline rewrite did).
func TestUnexpected3yzNotPermanent(t *testing.T) {
	for _, verb := range []string{"MAIL", "RCPT", "DATA"} {
		t.Run(verb, func(t *testing.T) {
			text := "354 unexpected"
			if verb == "DATA" {
				text = "334 unexpected"
			}
			s := autoServer(t, scripted.Options{}, scripted.AutoConfig{Caps: scripted.Caps("8BITMIME"),
				Answer: answerFirst(verb, scripted.Response{Text: scripted.Lines(text)})})
			tr := &transport.SMTP{Addr: s.Addr, Security: transport.Plaintext, LocalName: localName}
			r := send(tr, runDeadline, refEnvelope(), refMessage)
			if r.res == nil {
				t.Fatalf("no result: %v", r.err)
			}
			if got := r.res.Rcpts[0].Outcome; got == transport.PermFailed {
				t.Errorf("recipient 0 perm-failed after an unexpected %s (err %v)", text[:3], r.err)
			}
		})
	}
}

// TestBDATTruncatedByLostConnection documents a server-side bug of the
// test server (go-smtp v0.25.1, through smtptest): handleBdat copies the
// chunk with io.Copy from an io.LimitReader, which reports no error when
// the connection ends early, so a BDAT ... LAST chunk cut short by a lost
// connection is taken as complete and the truncated message is accepted.
// A client cannot prevent it; the sweeps count such copies (truncatedBDAT)
// and do not take them for the message. Skipped: it pins a dependency's
// behaviour (reported to smtptest's owner).
func TestBDATTruncatedByLostConnection(t *testing.T) {
	t.Skip("go-smtp v0.25.1 accepts a BDAT chunk cut by the end of the connection as complete")
	m := modeByName("plain")
	ref, _ := reference(t, m, true)
	eod := ref.Steps[ref.Find(".", 0)]
	out, err := runCase(t, cutCase{m: m, intercept: true, cut: &faultproxy.Point{Dir: faultproxy.Up, N: eod.End - 10}})
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range out.msgs {
		t.Errorf("server accepted a message cut short: %q", msg.Data)
	}
}

// TestCredentialEchoScrubbed: a server that echoes the credential it
// received in its refusal ("535 ... <base64 of the PLAIN response>") gets
// it into the debug transcript (only 334 challenges are redacted) and into
// the *ReplyError the caller logs. The client knows the bytes it sent in
// the exchange and could scrub or redact the reply texts of the whole AUTH
// exchange.
func TestCredentialEchoScrubbed(t *testing.T) {
	echo := base64.StdEncoding.EncodeToString([]byte("\x00" + testUser + "\x00" + testPassword))
	s := autoServer(t, scripted.Options{ImplicitTLS: true}, scripted.AutoConfig{Caps: scripted.Caps("AUTH PLAIN"),
		Answer: answerFirst("AUTH", scripted.Response{Text: scripted.Lines("535 5.7.8 bad credentials " + echo)})})
	var transcript bytes.Buffer
	tr := &transport.SMTP{Addr: s.Addr, Security: transport.ImplicitTLS, TLSConfig: &tls.Config{RootCAs: scripted.CertPool()},
		LocalName: localName, Auth: credsConfig("PLAIN"), Debug: &lockedBuffer{b: &transcript}}
	r := send(tr, runDeadline, refEnvelope(), refMessage)
	if l := leaks(transcript.String(), testPassword); len(l) > 0 {
		t.Errorf("transcript: %v", l)
	}
	if l := leaks(everything(r), testPassword); len(l) > 0 {
		t.Errorf("error: %v", l)
	}
}
