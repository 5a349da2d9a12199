package faultproxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/faultproxy"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

func start(t *testing.T, cfg faultproxy.Config) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// chat dials addr, reads the greeting, sends each line and reads one reply
// line per command, returning everything read.
func chat(t *testing.T, network, addr string, lines ...string) (string, error) {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	var got strings.Builder
	readReply := func() error {
		for {
			l, err := r.ReadString('\n')
			got.WriteString(l)
			if err != nil {
				return err
			}
			if len(l) < 4 || l[3] != '-' {
				return nil
			}
		}
	}
	if err := readReply(); err != nil {
		return got.String(), err
	}
	for _, l := range lines {
		if _, err := io.WriteString(c, l+"\r\n"); err != nil {
			return got.String(), err
		}
		if err := readReply(); err != nil {
			return got.String(), err
		}
	}
	return got.String(), nil
}

func TestRelayRecordsAndCounts(t *testing.T) {
	srv := smtptest.NewServer()
	defer srv.Close()
	p := start(t, faultproxy.Config{Target: srv.Addr})
	got, err := chat(t, "tcp", p.Addr(), "EHLO client.test", "NOOP", "QUIT")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, "220 ") || !strings.Contains(got, "221 ") {
		t.Fatalf("got %q", got)
	}
	if !p.WaitIdle(5 * time.Second) {
		t.Fatal("connection did not end")
	}
	ci, ok := p.Conn(0)
	if !ok {
		t.Fatal("no connection recorded")
	}
	if string(ci.Forwarded[faultproxy.Up]) != "EHLO client.test\r\nNOOP\r\nQUIT\r\n" {
		t.Errorf("up = %q", ci.Forwarded[faultproxy.Up])
	}
	if string(ci.Forwarded[faultproxy.Down]) != got {
		t.Errorf("down = %q, client read %q", ci.Forwarded[faultproxy.Down], got)
	}
	s := faultproxy.Analyze(ci.Forwarded[faultproxy.Up], ci.Forwarded[faultproxy.Down], faultproxy.AnalyzeOptions{})
	if v := strings.Join(s.Verbs(), ","); v != "GREETING,EHLO,NOOP,QUIT" {
		t.Errorf("steps %s", v)
	}
	for _, st := range s.Steps {
		if !st.Answered() {
			t.Errorf("step %s not answered", st.Verb)
		}
	}
}

func TestCutExactly(t *testing.T) {
	srv := smtptest.NewServer()
	defer srv.Close()
	for _, dir := range []faultproxy.Dir{faultproxy.Up, faultproxy.Down} {
		for _, n := range []int64{0, 1, 7, 30} {
			p := start(t, faultproxy.Config{Target: srv.Addr, Cut: &faultproxy.Point{Dir: dir, N: n}})
			chat(t, "tcp", p.Addr(), "EHLO client.test", "NOOP", "QUIT")
			p.WaitIdle(5 * time.Second)
			ci, _ := p.Conn(0)
			if !ci.Cut {
				t.Errorf("%v %d: cut did not fire", dir, n)
			}
			if got := int64(len(ci.Forwarded[dir])); got != n {
				t.Errorf("%v %d: forwarded %d bytes", dir, n, got)
			}
			p.Close()
		}
	}
}

func TestStallOneDirection(t *testing.T) {
	srv := smtptest.NewServer()
	defer srv.Close()
	p := start(t, faultproxy.Config{Target: srv.Addr, Stall: &faultproxy.Point{Dir: faultproxy.Down, N: 10}})
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	b, err := io.ReadAll(c)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want timeout", err)
	}
	if len(b) != 10 {
		t.Errorf("read %q, want 10 bytes", b)
	}
	// The other direction still flows.
	io.WriteString(c, "NOOP\r\n")
	time.Sleep(50 * time.Millisecond)
	ci, _ := p.Conn(0)
	if string(ci.Forwarded[faultproxy.Up]) != "NOOP\r\n" || !ci.Stalled[faultproxy.Down] {
		t.Errorf("up %q stalled %v", ci.Forwarded[faultproxy.Up], ci.Stalled)
	}
}

func TestStallReply(t *testing.T) {
	srv := smtptest.NewServer()
	defer srv.Close()
	p := start(t, faultproxy.Config{Target: srv.Addr, StallReply: 3})
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "EHLO x\r\nNOOP\r\n")
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	b, _ := io.ReadAll(c)
	s := faultproxy.ParseReplies(b)
	if len(s) != 2 || s[0].Code != 220 || s[1].Code != 250 || !s[1].Complete {
		t.Errorf("replies %+v from %q", s, b)
	}
}

func TestStripCapabilities(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"250-x\r\n250-STARTTLS\r\n250 PIPELINING\r\n", "250-x\r\n250 PIPELINING\r\n"},
		{"250-x\r\n250-PIPELINING\r\n250 STARTTLS\r\n", "250-x\r\n250 PIPELINING\r\n"},
		{"250-x\r\n250 starttls\r\n", "250 x\r\n"},
		{"250-x\r\n250-AUTH PLAIN\r\n250-AUTH=LOGIN\r\n250 SIZE 10\r\n", "250-x\r\n250 SIZE 10\r\n"},
		{"220 x STARTTLS\r\n", "220 x STARTTLS\r\n"},
	} {
		got := string(faultproxy.StripCapabilities([]byte(tc.in), "STARTTLS", "AUTH"))
		if got != tc.want {
			t.Errorf("strip(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestStripSTARTTLSDowngrade(t *testing.T) {
	srv := smtptest.NewStartTLSServer()
	defer srv.Close()
	p := start(t, faultproxy.Config{Target: srv.Addr, StripSTARTTLS: true})
	tr := &transport.SMTP{Addr: p.Addr(), Security: transport.StartTLS, TLSConfig: srv.ClientTLSConfig(), LocalName: "client.test"}
	_, err := tr.Send(context.Background(), envelope.New("a@example.org", "b@example.org"), strings.NewReader("Subject: x\r\n\r\nhi\r\n"))
	var ne *transport.NotSupportedError
	if !errors.As(err, &ne) || ne.Extension != "STARTTLS" {
		t.Fatalf("err = %v, want STARTTLS not supported", err)
	}
	p.WaitIdle(5 * time.Second)
	ci, _ := p.Conn(0)
	if strings.Contains(string(ci.Forwarded[faultproxy.Down]), "STARTTLS") {
		t.Errorf("STARTTLS reached the client: %q", ci.Forwarded[faultproxy.Down])
	}
	if len(srv.Messages()) != 0 {
		t.Error("message delivered")
	}
}

func newCA(t *testing.T) *faultproxy.CA {
	t.Helper()
	ca, err := faultproxy.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestInterceptSTARTTLSPlaintextView(t *testing.T) {
	srv := smtptest.NewStartTLSServer()
	defer srv.Close()
	ca := newCA(t)
	cert, err := ca.Issue(faultproxy.Loopback())
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, faultproxy.Config{Target: srv.Addr, InterceptSTARTTLS: true, TLS: faultproxy.ServerConfig(cert), UpstreamTLS: srv.ClientTLSConfig()})
	tr := &transport.SMTP{Addr: p.Addr(), Security: transport.StartTLS, TLSConfig: &tls.Config{RootCAs: ca.Pool()}, LocalName: "client.test"}
	res, err := tr.Send(context.Background(), envelope.New("a@example.org", "b@example.org"), strings.NewReader("Subject: x\r\n\r\nhi\r\n"))
	if err != nil {
		t.Fatalf("Send: %v (%+v)", err, res)
	}
	transport.CloseIdleConnections(tr)
	p.WaitIdle(5 * time.Second)
	ci, _ := p.Conn(0)
	if !ci.TLS {
		t.Error("TLS not terminated")
	}
	up := string(ci.Forwarded[faultproxy.Up])
	if !strings.Contains(up, "STARTTLS\r\n") || !strings.Contains(up, "MAIL FROM:<a@example.org>") {
		t.Errorf("plaintext view: %q", up)
	}
	s := faultproxy.Analyze(ci.Forwarded[faultproxy.Up], ci.Forwarded[faultproxy.Down], faultproxy.AnalyzeOptions{})
	if s.Find(".", 0) < 0 || !s.Steps[s.Find(".", 0)].Answered() {
		t.Errorf("no answered end of data in %v", s.Verbs())
	}
	if m := srv.Messages(); len(m) != 1 || !m[0].TLS {
		t.Errorf("messages %+v", m)
	}
}

func TestImplicitTLSUntrustedMITM(t *testing.T) {
	srv := smtptest.NewTLSServer()
	defer srv.Close()
	cert, err := newCA(t).Issue(faultproxy.Loopback()) // a CA the client does not trust
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, faultproxy.Config{Target: srv.Addr, ImplicitTLS: true, TLS: faultproxy.ServerConfig(cert), UpstreamTLS: srv.ClientTLSConfig()})
	tr := &transport.SMTP{Addr: p.Addr(), Security: transport.ImplicitTLS, TLSConfig: srv.ClientTLSConfig(), LocalName: "client.test"}
	_, err = tr.Send(context.Background(), envelope.New("a@example.org", "b@example.org"), strings.NewReader("hi\r\n"))
	var oe *transport.OpError
	if !errors.As(err, &oe) || oe.Op != transport.OpStartTLS {
		t.Fatalf("err = %v, want a TLS failure", err)
	}
	p.WaitIdle(5 * time.Second)
	ci, _ := p.Conn(0)
	if len(ci.Received[faultproxy.Up]) != 0 {
		t.Errorf("client sent %q through an untrusted TLS session", ci.Received[faultproxy.Up])
	}
}

func TestUnixSocketLMTP(t *testing.T) {
	srv := smtptest.NewLMTPServer()
	defer srv.Close()
	p := start(t, faultproxy.Config{Network: "unix", TargetNetwork: "unix", Target: srv.Addr})
	tr := &transport.LMTP{Network: "unix", Addr: p.Addr(), LocalName: "client.test"}
	res, err := tr.Send(context.Background(), envelope.New("a@example.org", "b@example.org", "c@example.org"), strings.NewReader("hi\r\n"))
	if err != nil {
		t.Fatalf("Send: %v (%+v)", err, res)
	}
	transport.CloseIdleConnections(tr)
	p.WaitIdle(5 * time.Second)
	ci, _ := p.Conn(0)
	s := faultproxy.Analyze(ci.Forwarded[faultproxy.Up], ci.Forwarded[faultproxy.Down], faultproxy.AnalyzeOptions{LMTP: true})
	i := s.Find(".", 0)
	if i < 0 || s.Steps[i].Want != 2 || !s.Steps[i].Answered() {
		t.Errorf("end of data: %+v in %v", s.Steps, s.Verbs())
	}
}

func TestAnalyzeBDATAndAuth(t *testing.T) {
	up := "EHLO x\r\nAUTH LOGIN\r\ndXNlcg==\r\ncGFzcw==\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nBDAT 5\r\nhello" +
		"BDAT 3 LAST\r\nabcQUIT\r\n"
	down := "220 hi\r\n250-x\r\n250 AUTH LOGIN\r\n334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 ok\r\n" +
		"250 ok\r\n250 ok\r\n550 no\r\n250 chunk\r\n250 done\r\n221 bye\r\n"
	s := faultproxy.Analyze([]byte(up), []byte(down), faultproxy.AnalyzeOptions{})
	want := "GREETING,EHLO,AUTH,AUTH-RESPONSE,AUTH-RESPONSE,MAIL,RCPT,RCPT,BDAT,.,QUIT"
	if got := strings.Join(s.Verbs(), ","); got != want {
		t.Fatalf("steps %s, want %s", got, want)
	}
	for _, st := range s.Steps {
		if !st.Answered() || !st.Complete {
			t.Errorf("%s: answered %v complete %v", st.Verb, st.Answered(), st.Complete)
		}
	}
	dot := s.Steps[s.Find(".", 0)]
	if dot.Replies[0].Code != 250 || up[dot.Start:dot.End] != "BDAT 3 LAST\r\nabc" {
		t.Errorf("end of data %+v %q", dot, up[dot.Start:dot.End])
	}
	// LMTP with DATA: one reply per accepted recipient, and a cut stream.
	up = "LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\nhi\r\n.\r\n"
	down = "220 hi\r\n250 x\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 c ok\r\n45"
	s = faultproxy.Analyze([]byte(up), []byte(down), faultproxy.AnalyzeOptions{LMTP: true})
	dot = s.Steps[s.Find(".", 0)]
	if dot.Want != 2 || len(dot.Replies) != 2 || dot.Replies[1].Complete || dot.Answered() {
		t.Errorf("lmtp end of data %+v", dot)
	}
}

func TestRewriteReply(t *testing.T) {
	srv := smtptest.NewServer()
	defer srv.Close()
	p := start(t, faultproxy.Config{Target: srv.Addr, Rewrite: func(n int, reply string) string {
		if n == 1 {
			return "421 4.3.2 rewritten\r\n"
		}
		return reply
	}})
	got, _ := chat(t, "tcp", p.Addr())
	if got != "421 4.3.2 rewritten\r\n" {
		t.Errorf("greeting %q", got)
	}
	p.WaitIdle(time.Second)
	ci, _ := p.Conn(0)
	if !strings.HasPrefix(string(ci.Received[faultproxy.Down]), "220 ") {
		t.Errorf("received %q, want the server's own greeting recorded", ci.Received[faultproxy.Down])
	}
}

func TestFaultConnsOnlyFirst(t *testing.T) {
	srv := smtptest.NewServer()
	defer srv.Close()
	p := start(t, faultproxy.Config{Target: srv.Addr, Cut: &faultproxy.Point{Dir: faultproxy.Down, N: 3}, FaultConns: 1})
	first, _ := chat(t, "tcp", p.Addr(), "QUIT")
	second, err := chat(t, "tcp", p.Addr(), "QUIT")
	if first != "220" || err != nil || !strings.Contains(second, "221") {
		t.Errorf("first %q, second %q (%v)", first, second, err)
	}
	if p.MaxActive() < 1 {
		t.Error("MaxActive")
	}
}
