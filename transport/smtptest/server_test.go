package smtptest_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/smtp"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

const body = "From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nline one\r\n.dot line\r\n"

func TestPlain(t *testing.T) {
	s := smtptest.NewServer()
	defer s.Close()
	if s.Network != "tcp" || !strings.HasPrefix(s.Addr, "127.0.0.1:") {
		t.Fatalf("Network, Addr = %q, %q; want tcp, 127.0.0.1:port", s.Network, s.Addr)
	}
	c := client(t, s)
	for _, ext := range []string{"PIPELINING", "CHUNKING", "8BITMIME", "ENHANCEDSTATUSCODES", "SIZE"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("server does not advertise %s", ext)
		}
	}
	for _, ext := range []string{"STARTTLS", "AUTH", "SMTPUTF8", "DSN", "REQUIRETLS", "BINARYMIME", "LIMITS"} {
		if ok, _ := c.Extension(ext); ok {
			t.Errorf("server advertises %s; want it off by default", ext)
		}
	}
	if err := send(c, "a@example.org", []string{"b@example.org", "c@example.org"}, body); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("Quit: %v", err)
	}

	msgs := s.Messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	want := smtptest.Message{
		From:        "a@example.org",
		To:          []string{"b@example.org", "c@example.org"},
		RcptOptions: []smtptest.RcptOptions{{}, {}},
		MailOptions: smtptest.MailOptions{Body: envelope.Body8BitMIME}, // net/smtp adds it
		Data:        []byte(body),
		Size:        int64(len(body)),
		Delivered:   []string{"b@example.org", "c@example.org"},
		Hello:       "client.example",
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("message =\n%+v\nwant\n%+v", m, want)
	}
}

func TestStartTLS(t *testing.T) {
	s := smtptest.NewStartTLSServer()
	defer s.Close()
	if s.Certificate() == nil || s.CertPool() == nil || s.TLS == nil {
		t.Fatal("StartTLS server has no certificate")
	}
	c := client(t, s)
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatal("server does not advertise STARTTLS")
	}
	if err := c.StartTLS(s.ClientTLSConfig()); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("server advertises STARTTLS after TLS started")
	}
	if err := send(c, "a@example.org", []string{"b@example.org"}, body); err != nil {
		t.Fatalf("send: %v", err)
	}
	c.Quit()
	msgs := s.Messages()
	if len(msgs) != 1 || !msgs[0].TLS {
		t.Fatalf("messages = %+v, want one with TLS", msgs)
	}
}

func TestStartTLSUntrusted(t *testing.T) {
	s := smtptest.NewUnstartedServer()
	s.Security = transport.StartTLS
	s.ErrorLog = log.New(io.Discard, "", 0) // the failed handshake is expected
	start(t, s)
	other := smtptest.NewTLSServer() // a different CA
	defer other.Close()
	c := client(t, s)
	cfg := s.ClientTLSConfig()
	cfg.RootCAs = other.CertPool()
	err := c.StartTLS(cfg)
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		t.Fatalf("StartTLS trusting another server's CA: err = %v, want x509.UnknownAuthorityError", err)
	}
}

func TestImplicitTLS(t *testing.T) {
	s := smtptest.NewTLSServer()
	defer s.Close()
	c := client(t, s)
	state, ok := c.TLSConnectionState()
	if !ok {
		t.Fatal("client connection is not TLS")
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("implicit TLS server advertises STARTTLS")
	}
	leaf := state.PeerCertificates[0]
	if err := leaf.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname("::1"); err != nil {
		t.Error(err)
	}
	if err := leaf.CheckSignatureFrom(s.Certificate()); err != nil {
		t.Errorf("leaf not signed by Certificate(): %v", err)
	}
	if !s.Certificate().IsCA {
		t.Error("Certificate() is not a CA certificate")
	}
	if err := send(c, "a@example.org", []string{"b@example.org"}, body); err != nil {
		t.Fatalf("send: %v", err)
	}
	c.Quit()
	if msgs := s.Messages(); len(msgs) != 1 || !msgs[0].TLS {
		t.Fatalf("messages = %+v, want one with TLS", msgs)
	}
}

// TestCertificateValidInSynctestEpoch checks that the certificate verifies
// at 2000-01-01, the start of a testing/synctest bubble's clock.
func TestCertificateValidInSynctestEpoch(t *testing.T) {
	s := smtptest.NewTLSServer()
	defer s.Close()
	leaf := s.TLS.Certificates[0].Leaf
	for _, at := range []time.Time{time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Now()} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: s.CertPool(), DNSName: "127.0.0.1", CurrentTime: at}); err != nil {
			t.Errorf("verify at %v: %v", at, err)
		}
	}
}

func TestUserTLSConfigKept(t *testing.T) {
	donor := smtptest.NewTLSServer()
	defer donor.Close()
	s := smtptest.NewUnstartedServer()
	s.Security = transport.ImplicitTLS
	s.TLS = &tls.Config{Certificates: donor.TLS.Certificates, MinVersion: tls.VersionTLS13}
	start(t, s)
	if s.Certificate() != nil {
		t.Error("Certificate() is not nil though the TLS config brought its own certificate")
	}
	cfg := s.ClientTLSConfig()
	cfg.RootCAs = donor.CertPool()
	conn, err := tls.Dial("tcp", s.Addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if v := conn.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("TLS version %x, want TLS 1.3", v)
	}
}

func TestHooksRefuse(t *testing.T) {
	s := smtptest.NewUnstartedServer()
	s.Mail = func(from string, _ smtptest.MailOptions) error {
		switch from {
		case "refused@example.org":
			return &transport.ReplyError{Code: 550, EnhancedCode: transport.EnhancedCode{5, 7, 1}, Message: "sender refused"}
		case "plain-error@example.org":
			return errors.New("database down")
		case "wrapped@example.org":
			return fmt.Errorf("wrapped: %w", &transport.ReplyError{Code: 421, EnhancedCode: transport.EnhancedCode{4, 3, 2}, Message: "closing"})
		case "positive@example.org":
			return &transport.ReplyError{Code: 250, Message: "not allowed here"}
		}
		return nil
	}
	s.Rcpt = func(to string, _ smtptest.RcptOptions) error {
		switch to {
		case "unknown@example.org":
			return &transport.ReplyError{Code: 550, EnhancedCode: transport.EnhancedCode{5, 1, 1}, Message: "no such user"}
		case "full@example.org":
			return &transport.ReplyError{Code: 452, EnhancedCode: transport.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
		}
		return nil
	}
	s.Data = func(m *smtptest.Message) error {
		switch {
		case bytes.Contains(m.Data, []byte("virus")):
			return &transport.ReplyError{Code: 554, EnhancedCode: transport.EnhancedCode{5, 6, 0}, Message: "content refused\nsecond line"}
		case bytes.Contains(m.Data, []byte("queue-id")):
			return &transport.ReplyError{Code: 250, EnhancedCode: transport.EnhancedCode{2, 0, 0}, Message: "Ok: queued as ABC123"}
		case bytes.Contains(m.Data, []byte("no-code")):
			return &transport.ReplyError{Code: 451, Message: "try later"}
		}
		return nil
	}
	start(t, s)

	c := client(t, s)
	wantReply(t, "MAIL refused", c.Mail("refused@example.org"), 550, "5.7.1 sender refused")
	wantReply(t, "MAIL plain error", c.Mail("plain-error@example.org"), 451, "4.3.0 database down")
	wantReply(t, "MAIL wrapped", c.Mail("wrapped@example.org"), 421, "4.3.2 closing")
	wantReply(t, "MAIL positive", c.Mail("positive@example.org"), 451, "4.3.0 smtptest: a MAIL or RCPT hook returned a positive reply 250 not allowed here")

	if err := c.Mail("a@example.org"); err != nil {
		t.Fatal(err)
	}
	wantReply(t, "RCPT unknown", c.Rcpt("unknown@example.org"), 550, "5.1.1 no such user")
	wantReply(t, "RCPT full", c.Rcpt("full@example.org"), 452, "4.2.2 mailbox full")
	if err := c.Rcpt("ok@example.org"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, "Subject: x\r\n\r\nvirus\r\n")
	wantReply(t, "DATA refused", w.Close(), 554, "5.6.0 content refused\n5.6.0 second line")

	c.Quit()

	// A 2yz ReplyError from Data accepts with that reply.
	r := newRaw(t, s)
	r.must(250, "EHLO client.example")
	r.must(250, "MAIL FROM:<a@example.org>")
	r.must(250, "RCPT TO:<ok@example.org>")
	r.data("Subject: x\r\n\r\nqueue-id\r\n")
	if code, msg := r.reply(); code != 250 || msg != "2.0.0 Ok: queued as ABC123" {
		t.Fatalf("end of data = %d %q; want 250 2.0.0 Ok: queued as ABC123", code, msg)
	}

	// A zero enhanced code sends none.
	r.must(250, "MAIL FROM:<a@example.org>")
	r.must(250, "RCPT TO:<ok@example.org>")
	r.data("no-code\r\n")
	if code, msg := r.reply(); code != 451 || msg != "try later" {
		t.Fatalf("end of data = %d %q, want 451 \"try later\" without an enhanced code", code, msg)
	}

	msgs := s.Messages()
	if len(msgs) != 1 || !bytes.Contains(msgs[0].Data, []byte("queue-id")) {
		t.Fatalf("recorded %d messages, want only the one accepted with a custom reply", len(msgs))
	}
	if got := msgs[0].To; !slices.Equal(got, []string{"ok@example.org"}) {
		t.Errorf("To = %q, want only the accepted recipient", got)
	}
}

func TestOptions(t *testing.T) {
	var gotMail []smtptest.MailOptions
	var gotRcpt []smtptest.RcptOptions
	s := smtptest.NewUnstartedServer()
	s.Security = transport.StartTLS
	s.EnableDSN = true
	s.EnableSMTPUTF8 = true
	s.EnableRequireTLS = true
	s.EnableBinaryMIME = true
	s.Mail = func(_ string, o smtptest.MailOptions) error { gotMail = append(gotMail, o); return nil }
	s.Rcpt = func(_ string, o smtptest.RcptOptions) error { gotRcpt = append(gotRcpt, o); return nil }
	start(t, s)

	r := newRaw(t, s)
	kw := ehloKeywords(r.must(250, "EHLO client.example"))
	for _, want := range []string{"DSN", "SMTPUTF8", "BINARYMIME", "STARTTLS"} {
		if !slices.Contains(kw, want) {
			t.Errorf("EHLO keywords %q lack %s", kw, want)
		}
	}
	if slices.Contains(kw, "REQUIRETLS") {
		t.Error("REQUIRETLS advertised before TLS")
	}
	// REQUIRETLS is refused on a clear session even though it is enabled.
	if code, msg := r.cmd("MAIL FROM:<a@example.org> REQUIRETLS"); code != 530 || msg != "5.7.10 REQUIRETLS requires an encrypted session" {
		t.Errorf("MAIL REQUIRETLS in clear = %d %q, want 530 5.7.10", code, msg)
	}
	r.must(220, "STARTTLS")
	tc := tls.Client(r.c, s.ClientTLSConfig())
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	r = &raw{t: t, c: tc, Conn: textproto.NewConn(tc)}
	kw = ehloKeywords(r.must(250, "EHLO client.example"))
	if !slices.Contains(kw, "REQUIRETLS") {
		t.Errorf("EHLO keywords after TLS %q lack REQUIRETLS", kw)
	}
	r.must(250, "MAIL FROM:<a@example.org> SIZE=123 BODY=8BITMIME SMTPUTF8 REQUIRETLS RET=HDRS ENVID=id+2B1 AUTH=<>")
	r.must(250, "RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@example.org")
	r.must(250, "RCPT TO:<c@example.org>")
	r.data(body)
	r.expect(250)

	wantMail := smtptest.MailOptions{Size: 123, Body: envelope.Body8BitMIME, UTF8: true, RequireTLS: true, Return: envelope.ReturnHeaders, EnvID: "id+1", Auth: "<>"}
	if len(gotMail) != 1 || !reflect.DeepEqual(gotMail[0], wantMail) {
		t.Errorf("Mail hook got %+v, want [%+v]", gotMail, wantMail)
	}
	wantRcpt := []smtptest.RcptOptions{
		{Notify: []envelope.DSNNotify{envelope.NotifySuccess, envelope.NotifyFailure}, ORcpt: "b+x@example.org", ORcptType: "RFC822"},
		{},
	}
	if !reflect.DeepEqual(gotRcpt, wantRcpt) {
		t.Errorf("Rcpt hook got %+v, want %+v", gotRcpt, wantRcpt)
	}
	msgs := s.Messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if !reflect.DeepEqual(m.MailOptions, wantMail) || !reflect.DeepEqual(m.RcptOptions, wantRcpt) || !m.TLS {
		t.Errorf("message = %+v, want the options and TLS recorded", m)
	}
	env := m.Envelope()
	wantEnv := &envelope.Envelope{
		From: "a@example.org",
		To: []envelope.Recipient{
			{Addr: "b@example.org", Notify: []envelope.DSNNotify{envelope.NotifySuccess, envelope.NotifyFailure}, ORcpt: "b+x@example.org"},
			{Addr: "c@example.org"},
		},
		Size: 123, Body: envelope.Body8BitMIME, UTF8: true, RequireTLS: true, Return: envelope.ReturnHeaders, EnvID: "id+1",
	}
	if !reflect.DeepEqual(env, wantEnv) {
		t.Errorf("Envelope() = %+v, want %+v", env, wantEnv)
	}
}

func TestDisabledExtensionsRefused(t *testing.T) {
	s := smtptest.NewServer()
	defer s.Close()
	r := newRaw(t, s)
	r.must(250, "EHLO client.example")
	for _, param := range []string{"SMTPUTF8", "RET=FULL", "BODY=BINARYMIME", "REQUIRETLS"} {
		if code, _ := r.cmd("MAIL FROM:<a@example.org> %s", param); code != 504 {
			t.Errorf("MAIL with %s on a server without it: code %d, want 504", param, code)
		}
	}
}

func TestLimits(t *testing.T) {
	s := smtptest.NewUnstartedServer()
	s.MaxMessageBytes = 100
	s.MaxRecipients = 2
	start(t, s)
	r := newRaw(t, s)
	kw := ehloKeywords(r.must(250, "EHLO client.example"))
	for _, want := range []string{"SIZE 100", "LIMITS RCPTMAX=2"} {
		if !slices.Contains(kw, want) {
			t.Errorf("EHLO keywords %q lack %q", kw, want)
		}
	}
	if code, msg := r.cmd("MAIL FROM:<a@example.org> SIZE=101"); code != 552 || !strings.HasPrefix(msg, "5.3.4 ") {
		t.Errorf("MAIL SIZE=101 = %d %q, want 552 5.3.4", code, msg)
	}
	r.must(250, "MAIL FROM:<a@example.org>")
	r.must(250, "RCPT TO:<b@example.org>")
	r.must(250, "RCPT TO:<c@example.org>")
	if code, msg := r.cmd("RCPT TO:<d@example.org>"); code != 452 || !strings.HasPrefix(msg, "4.5.3 ") {
		t.Errorf("third RCPT = %d %q, want 452 4.5.3", code, msg)
	}
	r.data(strings.Repeat("x", 200) + "\r\n")
	if code, msg := r.reply(); code != 552 || !strings.HasPrefix(msg, "5.3.4 ") {
		t.Errorf("oversized data = %d %q, want 552 5.3.4", code, msg)
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("recorded %d messages, want 0", n)
	}
}

func TestBDAT(t *testing.T) {
	s := smtptest.NewServer()
	defer s.Close()
	r := newRaw(t, s)
	r.must(250, "EHLO client.example")
	r.must(250, "MAIL FROM:<a@example.org>")
	r.must(250, "RCPT TO:<b@example.org>")
	r.bdat(body, 10)
	r.expect(250)
	r.must(250, "MAIL FROM:<a@example.org>")
	r.must(250, "RCPT TO:<b@example.org>")
	r.data(body)
	r.expect(250)
	msgs := s.Messages()
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want 2", len(msgs))
	}
	if !msgs[0].Chunked || msgs[1].Chunked {
		t.Errorf("Chunked = %v, %v; want true for BDAT, false for DATA", msgs[0].Chunked, msgs[1].Chunked)
	}
	for i, m := range msgs {
		if string(m.Data) != body {
			t.Errorf("message %d data = %q, want %q", i, m.Data, body)
		}
	}
}

func TestUnixSMTP(t *testing.T) {
	s := smtptest.NewUnstartedServer()
	s.Network = "unix"
	start(t, s)
	if !strings.HasSuffix(s.Addr, "smtp.sock") {
		t.Errorf("Addr = %q, want a socket path", s.Addr)
	}
	c := client(t, s)
	if err := send(c, "a@example.org", []string{"b@example.org"}, body); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	if n := len(s.Messages()); n != 1 {
		t.Errorf("recorded %d messages, want 1", n)
	}
}

func TestResetAndConcurrency(t *testing.T) {
	s := smtptest.NewServer()
	defer s.Close()
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.DialTimeout("tcp", s.Addr, testTimeout)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(testTimeout))
			c, err := smtp.NewClient(conn, "127.0.0.1")
			if err != nil {
				errs <- err
				return
			}
			for j := range 3 {
				if err := send(c, fmt.Sprintf("s%d@example.org", i), []string{fmt.Sprintf("r%d-%d@example.org", i, j)}, body); err != nil {
					errs <- err
					return
				}
			}
			errs <- c.Quit()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := len(s.Messages()); got != 3*n {
		t.Errorf("recorded %d messages, want %d", got, 3*n)
	}
	s.Reset()
	if got := len(s.Messages()); got != 0 {
		t.Errorf("after Reset, %d messages", got)
	}
}

func TestRequireAuth(t *testing.T) {
	s := smtptest.NewUnstartedServer()
	s.Users = map[string]string{"alice": "pw"}
	s.RequireAuth = true
	start(t, s)
	c := client(t, s)
	wantReply(t, "MAIL before AUTH", c.Mail("a@example.org"), 530, "5.7.0 Authentication required")
}

func TestDebug(t *testing.T) {
	var buf lockedBuffer
	s := smtptest.NewUnstartedServer()
	s.Debug = &buf
	start(t, s)
	c := client(t, s)
	c.Quit()
	s.Close()
	got := buf.String()
	for _, want := range []string{"220 localhost ESMTP Service Ready", "EHLO client.example", "221 2.0.0 Bye"} {
		if !strings.Contains(got, want) {
			t.Errorf("Debug transcript lacks %q:\n%s", want, got)
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestURL(t *testing.T) {
	tests := []struct {
		name   string
		server func() *smtptest.Server
		want   func(s *smtptest.Server) string
	}{
		{"plain", smtptest.NewServer, func(s *smtptest.Server) string { return "smtp://" + s.Addr + "?tls=none" }},
		{"starttls", smtptest.NewStartTLSServer, func(s *smtptest.Server) string { return "smtp://" + s.Addr + "?tls=starttls" }},
		{"implicit", smtptest.NewTLSServer, func(s *smtptest.Server) string { return "smtps://" + s.Addr }},
		{"lmtp-unix", smtptest.NewLMTPServer, func(s *smtptest.Server) string { return "lmtp://" + s.Addr }},
		{"lmtp-tcp", func() *smtptest.Server {
			s := smtptest.NewUnstartedServer()
			s.LMTP = true
			s.Start()
			return s
		}, func(s *smtptest.Server) string { return "lmtp://" + s.Addr + "?tls=none" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.server()
			defer s.Close()
			got, want := s.URL(), tt.want(s)
			if got != want {
				t.Errorf("URL() = %q, want %q", got, want)
			}
			u, err := url.Parse(got)
			if err != nil {
				t.Fatal(err)
			}
			if addr := u.Host + u.Path; addr != s.Addr {
				t.Errorf("URL %q names %q, want %q", got, addr, s.Addr)
			}
		})
	}
}

func TestTransport(t *testing.T) {
	for _, sec := range []transport.Security{transport.Plaintext, transport.StartTLS, transport.ImplicitTLS} {
		s := smtptest.NewUnstartedServer()
		s.Security = sec
		start(t, s)
		tr := s.Transport()
		if tr.Network != "tcp" || tr.Addr != s.Addr || tr.Security != sec {
			t.Errorf("%v: Transport() = %s %s %v, want tcp %s %v", sec, tr.Network, tr.Addr, tr.Security, s.Addr, sec)
		}
		if tr.TLSConfig == nil || tr.TLSConfig.ServerName != "127.0.0.1" {
			t.Errorf("%v: TLSConfig = %+v, want ServerName 127.0.0.1", sec, tr.TLSConfig)
		}
		if sec != transport.Plaintext && !tr.TLSConfig.RootCAs.Equal(s.CertPool()) {
			t.Errorf("%v: TLSConfig.RootCAs is not the server's pool", sec)
		}
	}

	lmtp := smtptest.NewLMTPServer()
	defer lmtp.Close()
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Transport() on an LMTP server did not panic")
			}
		}()
		lmtp.Transport()
	}()
	lt := lmtp.LMTPTransport()
	if lt.Network != "unix" || lt.Addr != lmtp.Addr || lt.RequireTLS || lt.TLSConfig.ServerName != "localhost" {
		t.Errorf("LMTPTransport() = %+v", lt)
	}
}

func TestStartTwicePanics(t *testing.T) {
	s := smtptest.NewServer()
	defer s.Close()
	defer func() {
		if recover() == nil {
			t.Error("second Start did not panic")
		}
	}()
	s.Start()
}

// TestClose checks that Close ends every session, idle or in the middle of
// a transaction, removes the socket's temporary directory, and leaves no
// goroutine behind.
func TestClose(t *testing.T) {
	before := settledGoroutines(t, -1)
	for _, mk := range []func() *smtptest.Server{smtptest.NewServer, smtptest.NewTLSServer, smtptest.NewStartTLSServer, smtptest.NewLMTPServer} {
		s := mk()
		var conns []net.Conn
		// An idle connection, one in a transaction and one in the data.
		idle := newRaw(t, s)
		conns = append(conns, idle.c)
		inTx := newRaw(t, s)
		hello := "EHLO"
		if s.LMTP {
			hello = "LHLO"
		}
		inTx.must(250, "%s client.example", hello)
		inTx.must(250, "MAIL FROM:<a@example.org>")
		conns = append(conns, inTx.c)
		inData := newRaw(t, s)
		inData.must(250, "%s client.example", hello)
		inData.must(250, "MAIL FROM:<a@example.org>")
		inData.must(250, "RCPT TO:<b@example.org>")
		inData.must(354, "DATA")
		inData.PrintfLine("partial line")
		conns = append(conns, inData.c)
		if s.Security == transport.StartTLS {
			tlsed := newRaw(t, s)
			tlsed.must(250, "EHLO client.example")
			tlsed.must(220, "STARTTLS")
			tc := tls.Client(tlsed.c, s.ClientTLSConfig())
			if err := tc.Handshake(); err != nil {
				t.Fatal(err)
			}
			conns = append(conns, tc)
		}

		addr, network := s.Addr, s.Network
		s.Close()
		s.Close() // idempotent

		for i, c := range conns {
			c.SetReadDeadline(time.Now().Add(testTimeout))
			buf := make([]byte, 512)
			for {
				if _, err := c.Read(buf); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						t.Errorf("%s: connection %d still open after Close", s.URL(), i)
					}
					break
				}
			}
			c.Close()
		}
		if c, err := net.DialTimeout(network, addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s: still accepting after Close", s.URL())
		}
		if network == "unix" {
			if _, err := os.Stat(filepath.Dir(addr)); !os.IsNotExist(err) {
				t.Errorf("%s: socket directory not removed: %v", s.URL(), err)
			}
		}
	}
	if after := settledGoroutines(t, before); after > before {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before, %d after Close\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}

// settledGoroutines waits until the number of goroutines stops falling (or
// reaches target) and returns it.
func settledGoroutines(t *testing.T, target int) int {
	t.Helper()
	n := runtime.NumGoroutine()
	for range 200 {
		if target >= 0 && n <= target {
			return n
		}
		time.Sleep(10 * time.Millisecond)
		m := runtime.NumGoroutine()
		if target < 0 && m == n {
			return n
		}
		n = m
	}
	return n
}

func TestCloseUnstarted(t *testing.T) {
	s := smtptest.NewUnstartedServer()
	s.Close()
}

func TestStartListenFailurePanics(t *testing.T) {
	busy := smtptest.NewServer()
	defer busy.Close()
	s := smtptest.NewUnstartedServer()
	s.Addr = busy.Addr
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Start on a busy address did not panic")
			}
		}()
		s.Start()
	}()
	s.Close() // must not panic
}

func TestDiscardData(t *testing.T) {
	s := smtptest.NewUnstartedServer()
	s.DiscardData = true
	s.Start()
	defer s.Close()
	body := strings.Repeat("0123456789\r\n", 1000)
	if err := smtp.SendMail(s.Addr, nil, "a@example.org", []string{"b@example.org"}, []byte(body)); err != nil {
		t.Fatal(err)
	}
	m := s.Messages()[0]
	if m.Data != nil || m.Size != int64(len(body)) {
		t.Errorf("Data len %d, Size %d; want nil and %d", len(m.Data), m.Size, len(body))
	}
}
