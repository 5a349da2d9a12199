package smtptest_test

import (
	"crypto/tls"
	"errors"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// testTimeout bounds every connection of a test, so that a hang fails
// instead of blocking the test binary.
const testTimeout = 10 * time.Second

// start starts s and closes it when the test ends.
func start(t *testing.T, s *smtptest.Server) *smtptest.Server {
	t.Helper()
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// rawConn connects to s, with TLS from the first byte if s uses implicit
// TLS, and returns the connection with a deadline set.
func rawConn(t *testing.T, s *smtptest.Server) net.Conn {
	t.Helper()
	d := &net.Dialer{Timeout: testTimeout}
	var c net.Conn
	var err error
	if s.Security == transport.ImplicitTLS {
		c, err = tls.DialWithDialer(d, s.Network, s.Addr, s.ClientTLSConfig())
	} else {
		c, err = d.Dial(s.Network, s.Addr)
	}
	if err != nil {
		t.Fatalf("dialing %s: %v", s.Addr, err)
	}
	c.SetDeadline(time.Now().Add(testTimeout))
	t.Cleanup(func() { c.Close() })
	return c
}

// client returns a net/smtp client of s that has sent EHLO client.example.
func client(t *testing.T, s *smtptest.Server) *smtp.Client {
	t.Helper()
	c, err := smtp.NewClient(rawConn(t, s), s.ClientTLSConfig().ServerName)
	if err != nil {
		t.Fatalf("smtp.NewClient: %v", err)
	}
	if err := c.Hello("client.example"); err != nil {
		t.Fatalf("Hello: %v", err)
	}
	return c
}

// send runs one transaction on c.
func send(c *smtp.Client, from string, to []string, body string) error {
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(body)); err != nil {
		return err
	}
	return w.Close()
}

// wantReply checks that err is the reply code followed by text (which
// starts with the enhanced code, as net/smtp leaves it in Msg).
func wantReply(t *testing.T, what string, err error, code int, text string) {
	t.Helper()
	var te *textproto.Error
	if !errors.As(err, &te) {
		t.Fatalf("%s: err = %v, want reply %d %s", what, err, code, text)
	}
	if te.Code != code || te.Msg != text {
		t.Fatalf("%s: reply = %d %q, want %d %q", what, te.Code, te.Msg, code, text)
	}
}

// raw is a client speaking the protocol line by line, for LMTP, BDAT and
// exact replies.
type raw struct {
	t *testing.T
	c net.Conn
	*textproto.Conn
}

func newRaw(t *testing.T, s *smtptest.Server) *raw {
	t.Helper()
	c := rawConn(t, s)
	r := &raw{t: t, c: c, Conn: textproto.NewConn(c)}
	r.expect(220)
	return r
}

// cmd sends a command and returns its reply.
func (r *raw) cmd(format string, args ...any) (int, string) {
	r.t.Helper()
	if err := r.PrintfLine(format, args...); err != nil {
		r.t.Fatalf("sending %q: %v", format, err)
	}
	return r.reply()
}

// reply reads one (possibly multi-line) reply.
func (r *raw) reply() (int, string) {
	r.t.Helper()
	code, msg, err := r.ReadResponse(0)
	if err != nil {
		var te *textproto.Error
		if !errors.As(err, &te) {
			r.t.Fatalf("reading reply: %v", err)
		}
	}
	return code, msg
}

// expect reads a reply and fails unless its code is code.
func (r *raw) expect(code int) string {
	r.t.Helper()
	got, msg := r.reply()
	if got != code {
		r.t.Fatalf("reply = %d %q, want code %d", got, msg, code)
	}
	return msg
}

// must sends a command and fails unless the reply code is code.
func (r *raw) must(code int, format string, args ...any) string {
	r.t.Helper()
	got, msg := r.cmd(format, args...)
	if got != code {
		r.t.Fatalf("%s: reply = %d %q, want code %d", strings.Fields(format)[0], got, msg, code)
	}
	return msg
}

// data sends DATA, the body (dot-stuffed by textproto) and the final dot,
// and returns nothing: the caller reads the reply or replies.
func (r *raw) data(body string) {
	r.t.Helper()
	r.must(354, "DATA")
	w := r.DotWriter()
	if _, err := w.Write([]byte(body)); err != nil {
		r.t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		r.t.Fatal(err)
	}
}

// bdat sends body in chunks of n bytes with BDAT, the last one with LAST,
// and returns nothing: the caller reads the final reply or replies.
func (r *raw) bdat(body string, n int) {
	r.t.Helper()
	for len(body) > n {
		if err := r.PrintfLine("BDAT %d", n); err != nil {
			r.t.Fatal(err)
		}
		if _, err := r.W.WriteString(body[:n]); err != nil {
			r.t.Fatal(err)
		}
		r.W.Flush()
		r.expect(250)
		body = body[n:]
	}
	if err := r.PrintfLine("BDAT %d LAST", len(body)); err != nil {
		r.t.Fatal(err)
	}
	r.W.WriteString(body)
	r.W.Flush()
}

// ehloKeywords returns the extension keywords of an EHLO or LHLO reply.
func ehloKeywords(msg string) []string {
	lines := strings.Split(msg, "\n")
	var kw []string
	for _, l := range lines[1:] {
		kw = append(kw, l)
	}
	return kw
}
