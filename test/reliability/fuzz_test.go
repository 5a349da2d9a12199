package reliability_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/dialer"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/faultproxy"
	"github.com/mailwire/mailwire/transport"
)

// FuzzClientSession drives a whole client session with fuzzed server bytes
// (in the manner of go-fuzz-corpus's smtp target): the server side of the
// connection is the first input, delivered in reads whose sizes come from
// the second, and the third picks the client's configuration. The client
// must return within a bound, close the connection, and keep the wire
// oracle: no credentials and no MAIL without TLS (which fuzzed bytes can
// never establish), nothing but the handshake after a 220 to STARTTLS and
// only if nothing followed the 220, no message body before a 354 (or
// BDAT after CHUNKING), command lines without bare CR or LF, and outcomes
// consistent with what was written.

// fuzzConn is a net.Conn whose reads return the fuzz input in chunks and
// whose writes are recorded with how much input had been read by then.
type fuzzConn struct {
	mu       sync.Mutex
	in       []byte
	splits   []byte
	si       int
	pos      int
	writes   []fuzzWrite
	closed   bool
	deadline time.Time
}

type fuzzWrite struct {
	data []byte
	read int // input bytes consumed before this write
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "fuzz conn: i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func (c *fuzzConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if !c.deadline.IsZero() && time.Now().After(c.deadline) {
		return 0, timeoutError{}
	}
	if c.pos >= len(c.in) {
		return 0, io.EOF
	}
	n := len(c.in) - c.pos
	if len(c.splits) > 0 {
		s := int(c.splits[c.si%len(c.splits)])
		c.si++
		if s > 0 {
			n = min(n, s)
		}
	}
	n = copy(p, c.in[c.pos:c.pos+n])
	c.pos += n
	return n, nil
}

func (c *fuzzConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if !c.deadline.IsZero() && time.Now().After(c.deadline) {
		return 0, timeoutError{}
	}
	c.writes = append(c.writes, fuzzWrite{data: bytes.Clone(p), read: c.pos})
	return len(p), nil
}

func (c *fuzzConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

func (c *fuzzConn) LocalAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }
func (c *fuzzConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25} }
func (c *fuzzConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return nil
}
func (c *fuzzConn) SetReadDeadline(t time.Time) error  { return c.SetDeadline(t) }
func (c *fuzzConn) SetWriteDeadline(t time.Time) error { return c.SetDeadline(t) }

const fuzzMarker = "fuzz-body-marker-7f3a"

const fuzzMessage = "Subject: fuzz\r\n\r\n" + fuzzMarker + "\r\n.leading dot\r\n"

// fuzzClient is the configuration picked by the third input.
type fuzzClient struct {
	lmtp, auth, required, opportunistic, noPipe, noChunk, noPool, requireAll bool
}

func pickClient(b uint8) fuzzClient {
	c := fuzzClient{}
	switch b & 3 {
	case 0: // plain SMTP
	case 1:
		c.required, c.auth = true, true
	case 2:
		c.opportunistic, c.auth = true, true
	case 3:
		c.lmtp = true
	}
	c.noPipe = b&4 != 0
	c.noChunk = b&8 != 0
	c.noPool = b&16 != 0
	c.requireAll = b&32 != 0
	return c
}

func (fc fuzzClient) transport(conn *fuzzConn) transport.Transport {
	dialed := false
	var mu sync.Mutex
	d := dialer.Func(func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		if dialed {
			return nil, errors.New("fuzz: one connection only")
		}
		dialed = true
		return conn, nil
	})
	if fc.lmtp {
		tr := &transport.LMTP{Network: "tcp", Addr: "fuzz.invalid:24", Dialer: d, LocalName: localName, DisablePipelining: fc.noPipe}
		if fc.noPool {
			tr.Pool.MaxIdleConns = -1
		}
		return tr
	}
	tr := &transport.SMTP{Addr: "fuzz.invalid:25", Dialer: d, LocalName: localName, Security: transport.Plaintext,
		DisablePipelining: fc.noPipe, DisableChunking: fc.noChunk, RequireAllRecipients: fc.requireAll}
	switch {
	case fc.required:
		tr.Security = transport.StartTLS
	case fc.opportunistic:
		tr.Security = transport.StartTLSOpportunistic
	}
	if fc.auth {
		tr.Auth = auth.Config{Credentials: auth.Credentials{Username: testUser, Password: testPassword,
			Token: func(context.Context) (string, error) { return testToken, nil }}}
	}
	if fc.noPool {
		tr.Pool.MaxIdleConns = -1
	}
	return tr
}

// fuzzSeeds are realistic server sides of sessions.
func fuzzSeeds() []struct {
	server string
	client uint8
} {
	ehlo := "250-fuzz.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
	ok := "250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n250 2.0.0 queued\r\n221 2.0.0 bye\r\n"
	g := "220 fuzz.example ESMTP\r\n"
	s := func(parts ...string) string { return strings.Join(parts, "") }
	return []struct {
		server string
		client uint8
	}{
		{s(g, ehlo, ok), 0},
		{s(g, "250-fuzz\r\n250 8BITMIME\r\n", ok), 0},
		{s(g, "250-fuzz\r\n250-PIPELINING\r\n250 CHUNKING\r\n", "250 ok\r\n250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n221 bye\r\n"), 0},
		{s(g, "502 5.5.2 what\r\n", "250 fuzz\r\n", ok), 0},
		{s("554 5.3.2 no service\r\n"), 0},
		{s("421 4.3.2 busy\r\n"), 0},
		{s(g, "421 4.3.2 closing\r\n"), 0},
		{s(g, ehlo, "550 5.7.1 sender refused\r\n503 no\r\n503 no\r\n554 no\r\n"), 0},
		{s(g, ehlo, "451 4.3.0 later\r\n503 no\r\n503 no\r\n554 no\r\n"), 0},
		{s(g, ehlo, "250 ok\r\n550 5.1.1 no\r\n550 5.1.1 no\r\n554 no valid recipients\r\n221 bye\r\n"), 0},
		{s(g, ehlo, "250 ok\r\n550 5.1.1 no\r\n250 ok\r\n354 go\r\n250 queued\r\n221 bye\r\n"), 0},
		{s(g, ehlo, "250 ok\r\n250 ok\r\n250 ok\r\n554 5.5.1 no\r\n"), 0},
		{s(g, ehlo, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"), 0},
		{s(g, ehlo, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n452 4.3.1 full\r\n221 bye\r\n"), 0},
		{s(g, ehlo, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n421 4.3.2 closing\r\n"), 0},
		{s(g, ehlo, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n25"), 0},
		{s(g, ehlo, "hello\r\n"), 0},
		{s("220-a\r\n250 b\r\n"), 0},
		{s(g, "250 "+strings.Repeat("x", 5000)+"\r\n"), 0},
		{s(g, "250-fuzz\r\n250 STARTTLS\r\n", "220 2.0.0 go ahead\r\n", "\x16\x03\x03\x00\x02\x02\x28"), 1},
		{s(g, "250-fuzz\r\n250 STARTTLS\r\n", "220 2.0.0 go ahead\r\n250-evil\r\n250 AUTH PLAIN\r\n"), 1},
		{s(g, "250-fuzz\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n", "454 4.7.0 no TLS\r\n235 2.7.0 ok\r\n"), 1},
		{s(g, "250-fuzz\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n", "454 4.7.0 no TLS\r\n", ok), 2},
		{s(g, "250-fuzz\r\n250-AUTH PLAIN LOGIN\r\n250 PIPELINING\r\n", ok), 2},
		{s(g, "250-fuzz\r\n250-AUTH PLAIN LOGIN\r\n250 PIPELINING\r\n", "235 2.7.0 ok\r\n", ok), 1},
		{s(g, "250-lmtp\r\n250 PIPELINING\r\n", "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 2.0.0 <a> ok\r\n250 2.0.0 <b> ok\r\n221 bye\r\n"), 3},
		{s(g, "250-lmtp\r\n250 PIPELINING\r\n", "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 2.0.0 <a> ok\r\n452 4.2.2 <b> full\r\n221 bye\r\n"), 3},
		{s(g, "250-lmtp\r\n250 PIPELINING\r\n", "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n421 4.3.2 bye\r\n"), 3},
		{s(g, "250 lmtp\r\n", "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 a\r\n"), 3 | 4},
		{strings.ReplaceAll(s(g, ehlo, ok), "\r\n", "\n"), 0},
		{s(g, ehlo, "250 2.1.0\r\n250 5.1.1 odd\r\n250\r\n354\r\n250 2.0.0\r\n"), 0},
		{s(g, ehlo, "354 what\r\n"), 0},
		{s(g, ehlo, "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n"), 0},
		{"\x16\x03\x01\x00\x05hello\r\n", 0},
		{s("220-fuzz.example ESMTP\r\n220-second line\r\n220 last\r\n", ehlo, ok), 0},
		{s(g, ehlo, ok), 4 | 16},
		{s(g, ehlo, "250 ok\r\n250 ok\r\n550 no\r\n354 go\r\n554 no\r\n"), 32},
		{s(g, "250-fuzz\r\n250-PIPELINING\r\n250 CHUNKING\r\n", "250 ok\r\n250 ok\r\n250 ok\r\n"), 0},
		{s(g, "250-fuzz\r\n250 CHUNKING\r\n", "250 ok\r\n250 ok\r\n250 ok\r\n552 5.3.4 too big\r\n"), 8},
	}
}

func FuzzClientSession(f *testing.F) {
	for _, sd := range fuzzSeeds() {
		f.Add([]byte(sd.server), []byte{}, sd.client)
		f.Add([]byte(sd.server), []byte{1}, sd.client)
		f.Add([]byte(sd.server), []byte{7, 3, 200}, sd.client)
	}
	f.Fuzz(func(t *testing.T, server, splits []byte, client uint8) {
		if len(server) > 64<<10 {
			return
		}
		fc := pickClient(client)
		conn := &fuzzConn{in: server, splits: splits}
		tr := fc.transport(conn)
		env := envelope.New("a@example.org", "b@example.org", "c@example.org")
		done := make(chan sendResult, 1)
		go func() { done <- send(tr, 2*time.Second, env, fuzzMessage) }()
		var r sendResult
		select {
		case r = <-done:
		case <-time.After(10 * time.Second):
			panic("FuzzClientSession: Send did not return within 10s")
		}
		if r.panic != nil {
			panic(r.panic)
		}
		if r.elapsed > 2*time.Second+runSlack {
			t.Errorf("Send took %v", r.elapsed)
		}
		conn.mu.Lock()
		closed := conn.closed
		writes := append([]fuzzWrite(nil), conn.writes...)
		conn.mu.Unlock()
		if len(writes) > 0 || conn.pos > 0 {
			if !closed {
				t.Errorf("the client did not close the connection")
			}
		}
		for _, p := range checkShape(r, env) {
			t.Error(p)
		}
		for _, p := range wireOracle(fc, server, writes, r) {
			t.Error(p)
		}
	})
}

// wireOracle checks what the client wrote against what it had read.
func wireOracle(fc fuzzClient, server []byte, writes []fuzzWrite, r sendResult) []string {
	var p []string
	var out bytes.Buffer
	clear := 0 // bytes of out before TLS began
	tlsStarted := false
	for i, w := range writes {
		if !tlsStarted && len(w.data) > 0 && w.data[0] == 0x16 && i > 0 && bytes.HasSuffix(out.Bytes(), []byte("STARTTLS\r\n")) {
			tlsStarted = true
			// The handshake began: the input read so far must end exactly
			// with a complete 220 reply.
			reps := faultproxy.ParseReplies(server[:w.read])
			if len(reps) == 0 {
				p = append(p, "TLS handshake without any reply read")
			} else if last := reps[len(reps)-1]; !last.Complete || last.Code != 220 || last.End != int64(w.read) {
				p = append(p, fmt.Sprintf("TLS handshake started although the input read ends %q", tail(server[:w.read])))
			}
		}
		if !tlsStarted {
			out.Write(w.data)
			clear = out.Len()
		}
	}
	wire := out.Bytes()[:clear]
	text := string(wire)
	p = append(p, wireProblems(text)...)
	if fc.auth {
		if hasLine(text, "AUTH") {
			p = append(p, "AUTH written without TLS")
		}
		for _, l := range leaks(text, testPassword, testToken) {
			p = append(p, "credential on the wire: "+l)
		}
	}
	if fc.required && (hasLine(text, "MAIL") || hasLine(text, "RCPT")) {
		p = append(p, "MAIL or RCPT written in clear with STARTTLS required")
	}
	// No body before 354 (DATA) or without CHUNKING (BDAT).
	var sofar bytes.Buffer
	for _, w := range writes {
		before := sofar.Len()
		sofar.Write(w.data)
		idx := bytes.Index(sofar.Bytes(), []byte(fuzzMarker))
		if idx < 0 || idx < before {
			continue
		}
		read := server[:w.read]
		if bytes.Contains(sofar.Bytes()[:idx], []byte("BDAT ")) {
			if !bytes.Contains(bytes.ToUpper(read), []byte("CHUNKING")) {
				p = append(p, "BDAT used although CHUNKING was never read")
			}
		} else {
			has354 := false
			for _, rp := range faultproxy.ParseReplies(read) {
				if rp.Complete && rp.Code == 354 {
					has354 = true
				}
			}
			if !has354 {
				p = append(p, "message body written before any 354 was read")
			}
		}
		break
	}
	// Outcomes consistent with what was written.
	end := bytes.Contains(wire, []byte("\r\n.\r\n")) && bytes.Contains(wire, []byte(fuzzMarker)) || bytes.Contains(bytes.ToUpper(wire), []byte(" LAST\r\n"))
	if r.res != nil && !end {
		for i, rr := range r.res.Rcpts {
			if rr.Outcome == transport.Accepted || rr.Outcome == transport.Unknown {
				p = append(p, fmt.Sprintf("recipient %d %v although the end of the data was never written", i, rr.Outcome))
			}
		}
	}
	return p
}

func tail(b []byte) []byte {
	if len(b) > 40 {
		return b[len(b)-40:]
	}
	return b
}

// TestFuzzSeedsCount checks and logs the number of seed sessions; go test
// runs them as FuzzClientSession's corpus.
func TestFuzzSeedsCount(t *testing.T) {
	n := len(fuzzSeeds())
	if n < 30 {
		t.Errorf("%d seeds, want at least 30", n)
	}
	t.Logf("FIGURE fuzz-client-session-seeds %d (x3 splits)", n)
}

// TestWireOracleDetects checks that the fuzz oracle catches the violations
// it exists for, on made-up transcripts.
func TestWireOracleDetects(t *testing.T) {
	greet := "220 x\r\n250-x\r\n250 STARTTLS\r\n"
	cases := []struct {
		name   string
		fc     fuzzClient
		server string
		writes []fuzzWrite
	}{
		{"body before 354", fuzzClient{}, greet + "250 ok\r\n",
			[]fuzzWrite{{[]byte("EHLO x\r\n"), 7}, {[]byte("MAIL FROM:<a@b>\r\nDATA\r\n" + fuzzMarker + "\r\n.\r\n"), 7}}},
		{"handshake over injected bytes", fuzzClient{required: true}, greet + "220 go\r\n250 evil\r\n",
			[]fuzzWrite{{[]byte("EHLO x\r\n"), 7}, {[]byte("STARTTLS\r\n"), 30}, {[]byte("\x16\x03\x01"), len(greet) + 20}}},
		{"auth in clear", fuzzClient{auth: true, opportunistic: true}, greet,
			[]fuzzWrite{{[]byte("EHLO x\r\n"), 7}, {[]byte("AUTH PLAIN AGFsaWNlAFBhNTUtdzByZC1TM2NyZXQtWHl6enk=\r\n"), len(greet)}}},
		{"bare LF", fuzzClient{}, greet, []fuzzWrite{{[]byte("EHLO x\nMAIL FROM:<a@b>\r\n"), 7}}},
		{"mail in clear", fuzzClient{required: true}, greet, []fuzzWrite{{[]byte("EHLO x\r\nMAIL FROM:<a@b>\r\n"), 7}}},
	}
	for _, c := range cases {
		if p := wireOracle(c.fc, []byte(c.server), c.writes, sendResult{}); len(p) == 0 {
			t.Errorf("%s: not detected", c.name)
		}
	}
}
