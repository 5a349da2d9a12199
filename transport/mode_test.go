package transport_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"strings"
	"testing"
	"time"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/dataenc"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// A mode is one way of reaching a server: each behaviour test runs over all
// of them, in the manner of net/http's run(t, f, modes).
type mode struct {
	name     string
	lmtp     bool
	network  string
	security transport.Security
	noBDAT   bool // send with DATA although the server offers CHUNKING
	noPipe   bool // do not pipeline although the server offers PIPELINING
}

var modes = []mode{
	{name: "plain", network: "tcp", security: transport.Plaintext},
	{name: "plain-data", network: "tcp", security: transport.Plaintext, noBDAT: true},
	{name: "plain-nopipelining", network: "tcp", security: transport.Plaintext, noBDAT: true, noPipe: true},
	{name: "plain-bdat-nopipelining", network: "tcp", security: transport.Plaintext, noPipe: true},
	{name: "starttls", network: "tcp", security: transport.StartTLS},
	{name: "starttls-data", network: "tcp", security: transport.StartTLS, noBDAT: true},
	{name: "implicittls", network: "tcp", security: transport.ImplicitTLS},
	{name: "lmtp-tcp", lmtp: true, network: "tcp", security: transport.Plaintext},
	{name: "lmtp-unix", lmtp: true, network: "unix", security: transport.Plaintext},
}

// server starts an smtptest server for m, configured by setup, and returns
// it with a transport for it.
func (m mode) server(t *testing.T, setup func(s *smtptest.Server)) (*smtptest.Server, transport.Transport) {
	t.Helper()
	s := smtptest.NewUnstartedServer()
	s.Network = m.network
	s.LMTP = m.lmtp
	s.Security = m.security
	s.ErrorLog = log.New(io.Discard, "", 0)
	if setup != nil {
		setup(s)
	}
	s.Start()
	t.Cleanup(s.Close)
	return s, m.transport(s)
}

func (m mode) transport(s *smtptest.Server) transport.Transport {
	if m.lmtp {
		tr := s.LMTPTransport()
		tr.LocalName = "client.example"
		tr.DisablePipelining = m.noPipe
		return tr
	}
	tr := s.Transport()
	tr.LocalName = "client.example"
	tr.DisableChunking = m.noBDAT
	tr.DisablePipelining = m.noPipe
	return tr
}

func run(t *testing.T, f func(t *testing.T, m mode)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { f(t, m) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

var bodies = map[string]string{
	"simple":                "Hello\r\n",
	"leading dots":          ".\r\n..\r\n.hidden\r\nx\r\n.\r\n",
	"bare LF":               "one\ntwo\n.\nthree\n",
	"bare CR":               "one\rtwo\r.\rthree\r",
	"CR runs":               "a\r\r\r\nb\r\r\n\r\r",
	"smuggling LF":          "x\n.\nMAIL FROM:<evil@example.net>\n",
	"smuggling CR":          "x\r.\rMAIL FROM:<evil@example.net>\r",
	"smuggling mixed":       "x\r\n.\nRCPT TO:<evil@example.net>\r\n.\r\nDATA\r\n",
	"998 octet line":        strings.Repeat("a", 998) + "\r\n",
	"1000 octet line":       strings.Repeat("b", 1000) + "\r\n",
	"8-bit":                 "caf\xe9 latin-1 byte\r\n",
	"UTF-8":                 "Grüße, 世界 ✉\r\n",
	"empty":                 "",
	"no final CRLF":         "last line without newline",
	"ends with CR":          "ends with CR\r",
	"only dot":              ".",
	"ends with terminator":  "text\r\n.\r\n",
	"double CRLF then dot":  "a\r\n\r\n.\r\n",
	"NUL byte":              "nul\x00inside\r\n",
	"long body many lines":  strings.Repeat("line of text\r\n", 5000),
	"dot after bare CR end": "x\r.",
}

func TestByteExactDelivery(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		s, tr := m.server(t, nil)
		for name, body := range bodies {
			msg := "Subject: " + name + "\r\n\r\n" + body
			env := envelope.New("sender@example.org", "rcpt@example.org")
			res, err := tr.Send(ctx(t), env, strings.NewReader(msg))
			if err != nil {
				t.Fatalf("%s: Send: %v", name, err)
			}
			if res.Rcpts[0].Outcome != transport.Accepted {
				t.Fatalf("%s: outcome %v", name, res.Rcpts[0].Outcome)
			}
			msgs := s.Messages()
			got := msgs[len(msgs)-1].Data
			want := dataenc.Normalize([]byte(msg))
			if !bytes.Equal(got, want) {
				t.Errorf("%s: server stored %q, want %q", name, trunc(got), trunc(want))
			}
		}
		if n := len(s.Messages()); n != len(bodies) {
			t.Errorf("server stored %d messages, want %d (smuggled messages?)", n, len(bodies))
		}
	})
}

func trunc(b []byte) []byte {
	if len(b) > 200 {
		return append(b[:200:200], "..."...)
	}
	return b
}

func refuseSome(to string, _ smtptest.RcptOptions) error {
	switch {
	case strings.HasPrefix(to, "perm"):
		return &transport.ReplyError{Code: 550, EnhancedCode: transport.EnhancedCode{5, 1, 1}, Message: "no such user"}
	case strings.HasPrefix(to, "temp"):
		return &transport.ReplyError{Code: 450, EnhancedCode: transport.EnhancedCode{4, 2, 0}, Message: "try later"}
	}
	return nil
}

func TestPartialRefusal(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		s, tr := m.server(t, func(s *smtptest.Server) { s.Rcpt = refuseSome })
		env := envelope.New("a@example.org", "ok1@example.org", "perm@example.org", "temp@example.org", "ok2@example.org")
		res, err := tr.Send(ctx(t), env, strings.NewReader(msg))
		if err == nil {
			t.Fatal("Send succeeded despite refusals")
		}
		var oe *transport.OpError
		if errors.As(err, &oe) {
			t.Errorf("partial success reported as a whole failure: %v", err)
		}
		want := []transport.Outcome{transport.Accepted, transport.PermFailed, transport.TempFailed, transport.Accepted}
		for i, w := range want {
			if got := res.Rcpts[i].Outcome; got != w {
				t.Errorf("rcpt %d (%s) = %v, want %v", i, res.Rcpts[i].Addr, got, w)
			}
			if res.Rcpts[i].Attempts != 1 {
				t.Errorf("rcpt %d attempts = %d", i, res.Rcpts[i].Attempts)
			}
		}
		if r := res.Rcpts[1].Reply; r == nil || r.Code != 550 || r.EnhancedCode != (transport.EnhancedCode{5, 1, 1}) {
			t.Errorf("perm reply = %+v", r)
		}
		var rerrs []*transport.RcptError
		for _, e := range unwrapAll(err) {
			var re *transport.RcptError
			if errors.As(e, &re) {
				rerrs = append(rerrs, re)
			}
		}
		if len(rerrs) != 2 || rerrs[0].Rcpt != "perm@example.org" || rerrs[1].Rcpt != "temp@example.org" {
			t.Errorf("aggregate = %v", err)
		}
		msgs := s.Messages()
		if len(msgs) != 1 {
			t.Fatalf("server stored %d messages", len(msgs))
		}
		if got := strings.Join(msgs[0].Delivered, ","); got != "ok1@example.org,ok2@example.org" {
			t.Errorf("delivered to %s", got)
		}
	})
}

func unwrapAll(err error) []error {
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		return u.Unwrap()
	}
	if u, ok := err.(interface{ WrappedErrors() []error }); ok {
		return u.WrappedErrors()
	}
	return []error{err}
}

func TestAllRecipientsRefused(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		s, tr := m.server(t, func(s *smtptest.Server) { s.Rcpt = refuseSome })
		env := envelope.New("a@example.org", "perm@example.org", "temp@example.org")
		res, err := tr.Send(ctx(t), env, strings.NewReader(msg))
		if err == nil || res.Count(transport.Accepted) != 0 {
			t.Fatalf("err = %v, res = %+v", err, res)
		}
		if res.Rcpts[0].Outcome != transport.PermFailed || res.Rcpts[1].Outcome != transport.TempFailed {
			t.Errorf("outcomes %v %v", res.Rcpts[0].Outcome, res.Rcpts[1].Outcome)
		}
		var oe *transport.OpError
		if !errors.As(err, &oe) || oe.Op != transport.OpRcpt {
			t.Errorf("err = %v, want an *OpError at rcpt", err)
		}
		if !errors.Is(err, transport.ErrPermanent) || !errors.Is(err, transport.ErrTransient) {
			t.Errorf("err = %v should match both classes of its recipients", err)
		}
		if n := len(s.Messages()); n != 0 {
			t.Errorf("server stored %d messages", n)
		}
	})
}

func TestSenderRefused(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		s, tr := m.server(t, func(s *smtptest.Server) {
			s.Mail = func(from string, _ smtptest.MailOptions) error {
				return &transport.ReplyError{Code: 553, EnhancedCode: transport.EnhancedCode{5, 7, 1}, Message: "sender rejected"}
			}
		})
		res, err := tr.Send(ctx(t), envelope.New("bad@example.org", "b@example.org", "c@example.org"), strings.NewReader(msg))
		var oe *transport.OpError
		if !errors.As(err, &oe) || oe.Op != transport.OpMail {
			t.Fatalf("err = %v, want OpError mail", err)
		}
		if !errors.Is(err, transport.ErrPermanent) {
			t.Errorf("not permanent: %v", err)
		}
		for _, rr := range res.Rcpts {
			if rr.Outcome != transport.PermFailed {
				t.Errorf("%s: %v", rr.Addr, rr.Outcome)
			}
		}
		if n := len(s.Messages()); n != 0 {
			t.Errorf("server stored %d messages", n)
		}
	})
}

func TestDataRefused(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		for _, code := range []int{554, 452} {
			refusal := &transport.ReplyError{Code: code, Message: "content refused"}
			s, tr := m.server(t, func(s *smtptest.Server) {
				s.Data = func(*smtptest.Message) error { return refusal }
				s.LMTPData = func(_ *smtptest.Message, rcpt string) error {
					if strings.HasPrefix(rcpt, "b@") {
						return refusal
					}
					return nil
				}
			})
			res, err := tr.Send(ctx(t), envelope.New("a@example.org", "b@example.org", "c@example.org"), strings.NewReader(msg))
			want := transport.PermFailed
			if code < 500 {
				want = transport.TempFailed
			}
			if m.lmtp {
				// LMTP: per recipient; c is delivered.
				if res.Rcpts[0].Outcome != want || res.Rcpts[1].Outcome != transport.Accepted {
					t.Errorf("%d: outcomes %v %v", code, res.Rcpts[0].Outcome, res.Rcpts[1].Outcome)
				}
				var oe *transport.OpError
				if errors.As(err, &oe) {
					t.Errorf("%d: LMTP partial success reported as a whole failure: %v", code, err)
				}
				continue
			}
			var oe *transport.OpError
			if !errors.As(err, &oe) || oe.Op != transport.OpEndOfData {
				t.Fatalf("%d: err = %v, want OpError end-of-data", code, err)
			}
			for _, rr := range res.Rcpts {
				if rr.Outcome != want {
					t.Errorf("%d: %s = %v, want %v", code, rr.Addr, rr.Outcome, want)
				}
			}
			if n := len(s.Messages()); n != 0 {
				t.Errorf("%d: server stored %d", code, n)
			}
		}
	})
}

func TestConnReuse(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		s, tr := m.server(t, func(s *smtptest.Server) {
			s.Mail = func(from string, _ smtptest.MailOptions) error {
				if strings.HasPrefix(from, "bad") {
					return &transport.ReplyError{Code: 550, Message: "no"}
				}
				return nil
			}
		})
		dialer, ok := tr.(interface {
			Dial(context.Context) (*transport.Conn, error)
		})
		if !ok {
			t.Fatal("no Dial")
		}
		c, err := dialer.Dial(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for i, from := range []string{"a@example.org", "bad@example.org", "c@example.org", "d@example.org"} {
			_, err := c.Send(ctx(t), envelope.New(from, fmt.Sprintf("r%d@example.org", i)), strings.NewReader(msg))
			if (err != nil) != strings.HasPrefix(from, "bad") {
				t.Errorf("send %d: %v", i, err)
			}
		}
		if err := c.Noop(ctx(t)); err != nil {
			t.Errorf("Noop: %v", err)
		}
		if err := c.Reset(ctx(t)); err != nil {
			t.Errorf("Reset: %v", err)
		}
		if ok, _ := c.Extension("pipelining"); !ok {
			t.Error("Extension(pipelining) = false")
		}
		if _, ok := c.MaxMessageSize(); !ok {
			t.Error("SIZE not advertised?")
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := c.Noop(ctx(t)); err == nil {
			t.Error("Noop after Close succeeded")
		}
		if n := len(s.Messages()); n != 3 {
			t.Errorf("server stored %d messages, want 3", n)
		}
	})
}

func TestSMTPUTF8(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		env := envelope.New("jörg@exämple.org", "zoë@example.org")
		s, tr := m.server(t, nil)
		_, err := tr.Send(ctx(t), env, strings.NewReader(msg))
		var ne *transport.NotSupportedError
		if !errors.As(err, &ne) || ne.Extension != "SMTPUTF8" {
			t.Fatalf("err = %v, want NotSupportedError SMTPUTF8", err)
		}
		if n := len(s.Messages()); n != 0 {
			t.Errorf("server stored %d", n)
		}
		s2, tr2 := m.server(t, func(s *smtptest.Server) { s.EnableSMTPUTF8 = true })
		if _, err := tr2.Send(ctx(t), env, strings.NewReader(msg)); err != nil {
			t.Fatalf("Send: %v", err)
		}
		got := s2.Messages()[0]
		if !got.MailOptions.UTF8 || got.From != "jörg@exämple.org" {
			t.Errorf("server saw %+v", got.MailOptions)
		}
	})
}

func TestSizeChecked(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		s, tr := m.server(t, func(s *smtptest.Server) { s.MaxMessageBytes = 100 })
		big := strings.Repeat("x", 1000)
		_, err := tr.Send(ctx(t), envelope.New("a@example.org", "b@example.org"), strings.NewReader(big))
		var se *transport.SizeError
		// 1000 bytes and the CRLF that ends the last line on the wire.
		if !errors.As(err, &se) || se.Limit != 100 || se.Size != 1002 {
			t.Fatalf("err = %v, want SizeError", err)
		}
		if !errors.Is(err, transport.ErrPermanent) {
			t.Error("size error not permanent")
		}
		if n := len(s.Messages()); n != 0 {
			t.Errorf("stored %d", n)
		}
		// LF line endings: SIZE is the size on the wire, with CRLF (RFC
		// 1870), which is what the server receives.
		if _, err := tr.Send(ctx(t), envelope.New("a@example.org", "b@example.org"), strings.NewReader("small\nbody\n")); err != nil {
			t.Fatal(err)
		}
		got := s.Messages()[0]
		if size := got.MailOptions.Size; size != 13 || int(size) != len(got.Data) {
			t.Errorf("declared SIZE=%d for %d bytes received, want 13", size, len(got.Data))
		}
	})
}

func TestDSNParameters(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		s, tr := m.server(t, func(s *smtptest.Server) { s.EnableDSN = true })
		env := &envelope.Envelope{
			From:   "a@example.org",
			Return: envelope.ReturnHeaders,
			EnvID:  "id+1=x",
			To: []envelope.Recipient{{
				Addr:   "b@example.org",
				Notify: []envelope.DSNNotify{envelope.NotifyFailure, envelope.NotifyDelay},
				ORcpt:  "orig@example.org",
			}},
		}
		if _, err := tr.Send(ctx(t), env, strings.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
		got := s.Messages()[0]
		if got.MailOptions.Return != envelope.ReturnHeaders || got.MailOptions.EnvID != "id+1=x" {
			t.Errorf("mail options %+v", got.MailOptions)
		}
		ro := got.RcptOptions[0]
		if len(ro.Notify) != 2 || ro.ORcpt != "orig@example.org" {
			t.Errorf("rcpt options %+v", ro)
		}
		// Without DSN on the server: a typed error, nothing sent.
		s2, tr2 := m.server(t, nil)
		_, err := tr2.Send(ctx(t), env, strings.NewReader(msg))
		if !errors.Is(err, errors.ErrUnsupported) || len(s2.Messages()) != 0 {
			t.Errorf("err = %v", err)
		}
	})
}

func TestRequireAllRecipients(t *testing.T) {
	s := smtptest.NewUnstartedServer()
	s.Security = transport.Plaintext
	s.Rcpt = refuseSome
	s.Start()
	defer s.Close()
	tr := s.Transport()
	tr.RequireAllRecipients = true
	res, err := tr.Send(ctx(t), envelope.New("a@example.org", "ok@example.org", "perm@example.org"), strings.NewReader(msg))
	if err == nil {
		t.Fatal("Send succeeded")
	}
	if !errors.Is(res.Rcpts[0].Err, transport.ErrNotAllAccepted) || res.Rcpts[0].Outcome != transport.PermFailed {
		t.Errorf("ok@: %v %v", res.Rcpts[0].Outcome, res.Rcpts[0].Err)
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("stored %d", n)
	}
}

func TestLMTPAgainstSMTPServer(t *testing.T) {
	s := smtptest.NewUnstartedServer()
	s.Security = transport.Plaintext
	s.Start()
	defer s.Close()
	tr := &transport.LMTP{Network: "tcp", Addr: s.Addr, LocalName: "client.example"}
	_, err := tr.Send(ctx(t), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg))
	var ne *transport.NotSupportedError
	if !errors.As(err, &ne) || ne.Extension != "LMTP" {
		t.Fatalf("err = %v, want NotSupportedError LMTP", err)
	}
	if _, err := (&transport.LMTP{Addr: "127.0.0.1:25"}).Send(ctx(t), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg)); err == nil {
		t.Error("LMTP on port 25 accepted")
	}
}

func TestLMTPPerRecipientReplies(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			m := mode{name: "lmtp", lmtp: true, network: network, security: transport.Plaintext}
			s, tr := m.server(t, func(s *smtptest.Server) {
				s.LMTPData = func(_ *smtptest.Message, rcpt string) error {
					switch {
					case strings.HasPrefix(rcpt, "full@"):
						return &transport.ReplyError{Code: 552, EnhancedCode: transport.EnhancedCode{5, 2, 2}, Message: "mailbox full"}
					case strings.HasPrefix(rcpt, "busy@"):
						return &transport.ReplyError{Code: 451, EnhancedCode: transport.EnhancedCode{4, 3, 0}, Message: "busy"}
					}
					return nil
				}
				s.Rcpt = refuseSome
			})
			env := envelope.New("a@example.org", "x@example.org", "full@example.org", "perm@example.org", "busy@example.org", "x@example.org")
			res, err := tr.Send(ctx(t), env, strings.NewReader(msg))
			want := []transport.Outcome{transport.Accepted, transport.PermFailed, transport.PermFailed, transport.TempFailed, transport.Accepted}
			for i, w := range want {
				if got := res.Rcpts[i].Outcome; got != w {
					t.Errorf("rcpt %d (%s) = %v, want %v (%v)", i, res.Rcpts[i].Addr, got, w, res.Rcpts[i].Err)
				}
			}
			if r := res.Rcpts[1].Reply; r == nil || r.Code != 552 {
				t.Errorf("full@ reply %+v", r)
			}
			if err == nil || !errors.Is(err, transport.ErrTransient) || !errors.Is(err, transport.ErrPermanent) {
				t.Errorf("err = %v", err)
			}
			if len(s.Messages()) != 1 {
				t.Errorf("stored %d", len(s.Messages()))
			}
		})
	}
}

func TestAuthAndRedaction(t *testing.T) {
	const user, pass = "alice", "s3cret-Pa55word"
	for _, mech := range []string{"PLAIN", "LOGIN"} {
		t.Run(mech, func(t *testing.T) {
			s := smtptest.NewUnstartedServer()
			s.Security = transport.StartTLS
			s.Users = map[string]string{user: pass}
			s.Start()
			defer s.Close()
			var transcript bytes.Buffer
			tr := s.Transport()
			tr.Debug = &transcript
			a, err := auth.New(mech, auth.Credentials{Username: user, Password: pass})
			if err != nil {
				t.Fatal(err)
			}
			tr.Auth = a
			if _, err := tr.Send(ctx(t), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg)); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if got := s.Messages()[0].AuthUser; got != user {
				t.Errorf("AuthUser = %q", got)
			}
			// Wrong password: a typed permanent auth error, nothing sent.
			bad, _ := auth.New(mech, auth.Credentials{Username: user, Password: "wrong-" + pass})
			tr = s.Transport()
			tr.Debug = &transcript
			tr.Auth = bad
			res, err := tr.Send(ctx(t), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg))
			var oe *transport.OpError
			var re *transport.ReplyError
			if !errors.As(err, &oe) || oe.Op != transport.OpAuth || !errors.As(err, &re) || re.Code != 535 {
				t.Fatalf("err = %v, want 535 at auth", err)
			}
			if !errors.Is(err, transport.ErrPermanent) || res.Rcpts[0].Outcome != transport.PermFailed {
				t.Errorf("not permanent: %v", err)
			}
			if len(s.Messages()) != 1 {
				t.Errorf("stored %d", len(s.Messages()))
			}
			assertNoSecret(t, transcript.String()+err.Error(), user, pass)
			if !strings.Contains(transcript.String(), "AUTH "+mech+" [redacted]") && !strings.Contains(transcript.String(), "AUTH "+mech) {
				t.Errorf("transcript lacks AUTH line:\n%s", transcript.String())
			}
		})
	}
}

// assertNoSecret fails if text contains the password or the base64 of any
// string a mechanism could send that includes it.
func assertNoSecret(t *testing.T, text, user, pass string) {
	t.Helper()
	forms := []string{pass, base64.StdEncoding.EncodeToString([]byte(pass)),
		base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass)),
		base64.StdEncoding.EncodeToString([]byte(user + "\x00" + user + "\x00" + pass))}
	for _, p := range forms {
		if strings.Contains(text, p) {
			t.Errorf("secret form %q leaked", p)
		}
	}
	// Any base64 of the password at the three alignments.
	for off := 0; off < 3; off++ {
		enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", off) + pass))
		core := enc[4*((off+2)/3)+4 : len(enc)-4]
		if len(core) > 6 && strings.Contains(text, core) {
			t.Errorf("base64 fragment of the password leaked (alignment %d)", off)
		}
	}
}

func TestAuthRefusedWithoutTLS(t *testing.T) {
	s := smtptest.NewUnstartedServer()
	s.Security = transport.Plaintext
	s.Users = map[string]string{"u": "p4ssw0rd-xyz"}
	s.AllowInsecureAuth = true
	s.Start()
	defer s.Close()
	var transcript bytes.Buffer
	tr := s.Transport()
	tr.Debug = &transcript
	tr.Auth = auth.Config{Credentials: auth.Credentials{Username: "u", Password: "p4ssw0rd-xyz"}}
	_, err := tr.Send(ctx(t), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg))
	if !errors.Is(err, auth.ErrInsecure) {
		t.Fatalf("err = %v, want ErrInsecure", err)
	}
	if errors.Is(err, transport.ErrTransient) {
		t.Error("insecure auth must not be retried")
	}
	if strings.Contains(transcript.String(), "AUTH") && strings.Contains(transcript.String(), "C: AUTH") {
		t.Errorf("AUTH sent in clear:\n%s", transcript.String())
	}
	if len(s.Messages()) != 0 {
		t.Error("message sent")
	}
}

// Ensure the io import is used when bodies change.
var _ = io.EOF

func TestChunkedOrNot(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		s, tr := m.server(t, nil)
		if _, err := tr.Send(ctx(t), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
		wantChunked := !m.lmtp && !m.noBDAT
		if got := s.Messages()[0].Chunked; got != wantChunked {
			t.Errorf("Chunked = %v, want %v", got, wantChunked)
		}
	})
}

func TestPreTLSExtensions(t *testing.T) {
	s := smtptest.NewStartTLSServer()
	defer s.Close()
	tr := s.Transport()
	defer tr.Close()
	c, err := tr.Dial(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.PreTLSExtensions()["STARTTLS"]; !ok {
		t.Errorf("PreTLSExtensions = %v, want STARTTLS", c.PreTLSExtensions())
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS still advertised after TLS")
	}
	if c.TLSConnectionState() == nil {
		t.Error("no TLS state")
	}
}
