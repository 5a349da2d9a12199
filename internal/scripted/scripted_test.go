package scripted_test

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

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/envelope"
	. "github.com/mailwire/mailwire/internal/scripted"
	"github.com/mailwire/mailwire/transport"
)

const msg = "Subject: hi\r\n\r\nbody\r\n"

func start(t *testing.T, o Options, steps ...Step) *Server {
	t.Helper()
	s, err := StartWith(o, steps...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func dial(t *testing.T, s *Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := s.Dialer().DialContext(context.Background(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c, bufio.NewReader(c)
}

func TestSplitInjectAndCut(t *testing.T) {
	s := start(t, Options{},
		ReplySplit(2, "220 split greeting"),
		ExpectLine("EHLO x"),
		ReplyInject("250 injected\r\n", "250-fake", "250 PIPELINING"),
		Expect("NOOP"),
		ReplyCut(5, "250 never finished"),
	)
	c, r := dial(t, s)
	first := make([]byte, 2)
	if _, err := io.ReadFull(r, first); err != nil || string(first) != "22" {
		t.Fatalf("first part %q %v", first, err)
	}
	if r.Buffered() != 0 {
		t.Errorf("second part arrived with the first")
	}
	rest, _ := r.ReadString('\n')
	if rest != "0 split greeting\r\n" {
		t.Errorf("rest %q", rest)
	}
	io.WriteString(c, "EHLO x\r\n")
	var got strings.Builder
	for i := 0; i < 3; i++ {
		l, _ := r.ReadString('\n')
		got.WriteString(l)
	}
	if got.String() != "250-fake\r\n250 PIPELINING\r\n250 injected\r\n" {
		t.Errorf("injected reply %q", got.String())
	}
	io.WriteString(c, "NOOP\r\n")
	b, _ := io.ReadAll(r)
	if string(b) != "250 n" {
		t.Errorf("cut reply %q", b)
	}
	if err := s.Wait(5 * time.Second); err != nil {
		t.Error(err)
	}
	if s.Received() != "EHLO x\r\nNOOP\r\n" {
		t.Errorf("received %q", s.Received())
	}
	if !strings.HasPrefix(s.Sent(), "220 split greeting\r\n") {
		t.Errorf("sent %q", s.Sent())
	}
}

func TestCapabilities(t *testing.T) {
	c := Caps("PIPELINING", "STARTTLS", "AUTH PLAIN LOGIN", "AUTH=LOGIN", "SIZE 100")
	if got := c.Without("starttls", "AUTH").Text("x"); got != "250-x\r\n250-PIPELINING\r\n250 SIZE 100\r\n" {
		t.Errorf("Without: %q", got)
	}
	if got := Caps().With("8BITMIME").Text("x"); got != "250-x\r\n250 8BITMIME\r\n" {
		t.Errorf("With: %q", got)
	}
	if got := Caps().Text("x"); got != "250 x\r\n" {
		t.Errorf("empty: %q", got)
	}
	if !c.Has("auth") || c.Without("AUTH").Has("AUTH") {
		t.Error("Has")
	}
}

func TestStallInterruptedByClose(t *testing.T) {
	s, err := Start(Reply("220 hi"), Stall(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bufio.NewReader(c).ReadString('\n')
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not interrupt the stall")
	}
}

func TestExpectNothingAndClose(t *testing.T) {
	s := start(t, Options{}, Reply("220 hi"), ExpectNothing(50*time.Millisecond), Reply("250 x"), ExpectClose(time.Second))
	c, r := dial(t, s)
	r.ReadString('\n')
	r.ReadString('\n')
	c.Close()
	if err := s.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	s = start(t, Options{}, Reply("220 hi"), ExpectNothing(200*time.Millisecond))
	c, _ = dial(t, s)
	io.WriteString(c, "NOOP\r\n")
	if err := s.Wait(5 * time.Second); err == nil {
		t.Fatal("ExpectNothing accepted a command")
	}
}

func send(t *testing.T, tr transport.Transport, env *envelope.Envelope) (*transport.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := tr.Send(ctx, env, strings.NewReader(msg))
	transport.CloseIdleConnections(tr)
	return res, err
}

func TestAutoPlain(t *testing.T) {
	for _, network := range []string{"tcp", "unix", "pipe"} {
		t.Run(network, func(t *testing.T) {
			s := start(t, Options{Network: network}, Auto(AutoConfig{Caps: Caps("PIPELINING", "8BITMIME")}))
			tr := &transport.SMTP{Network: "tcp", Addr: "unused:25", Dialer: s.Dialer(), Security: transport.Plaintext, LocalName: "client.test"}
			res, err := send(t, tr, envelope.New("a@example.org", "b@example.org", "c@example.org"))
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if res.Count(transport.Accepted) != 2 {
				t.Errorf("result %+v", res)
			}
			s.Wait(5 * time.Second)
			d := s.Deliveries()
			if len(d) != 1 || string(d[0].Data) != msg || len(d[0].Accepted) != 2 {
				t.Errorf("deliveries %+v", d)
			}
			if got := strings.Join(s.Commands(), ","); !strings.HasPrefix(got, "EHLO,MAIL,RCPT,RCPT,DATA,.") {
				t.Errorf("commands %s", got)
			}
		})
	}
}

func TestAutoStartTLSAndAuth(t *testing.T) {
	s := start(t, Options{}, Auto(AutoConfig{
		Caps:    Caps("STARTTLS", "PIPELINING"),
		CapsTLS: Caps("PIPELINING", "AUTH PLAIN LOGIN"),
	}))
	tr := &transport.SMTP{Addr: s.Addr, Security: transport.StartTLS, TLSConfig: &tls.Config{RootCAs: CertPool()}, LocalName: "client.test",
		Auth: auth.Config{Credentials: auth.Credentials{Username: "u", Password: "p"}, Mechanisms: []string{"LOGIN"}}}
	if _, err := send(t, tr, envelope.New("a@example.org", "b@example.org")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	s.Wait(5 * time.Second)
	if got := strings.Join(s.Commands(), ","); !strings.HasPrefix(got, "EHLO,STARTTLS,EHLO,AUTH,AUTH-RESPONSE,AUTH-RESPONSE,MAIL") {
		t.Errorf("commands %s", got)
	}
	if d := s.Deliveries(); len(d) != 1 || !d[0].TLS {
		t.Errorf("deliveries %+v", d)
	}
}

func TestAutoImplicitTLSAndLMTP(t *testing.T) {
	s := start(t, Options{ImplicitTLS: true}, Auto(AutoConfig{Caps: Caps("PIPELINING")}))
	tr := &transport.SMTP{Addr: s.Addr, Security: transport.ImplicitTLS, TLSConfig: &tls.Config{RootCAs: CertPool()}, LocalName: "client.test"}
	if _, err := send(t, tr, envelope.New("a@example.org", "b@example.org")); err != nil {
		t.Fatalf("implicit TLS: %v", err)
	}

	l := start(t, Options{Network: "unix"}, Auto(AutoConfig{LMTP: true, Caps: Caps("PIPELINING"),
		Answer: func(c Command) Response {
			if c.Verb == "." {
				return Response{Text: Lines("250 2.0.0 <b@example.org> ok", "452 4.2.2 <c@example.org> over quota")}
			}
			return Response{}
		}}))
	lt := &transport.LMTP{Network: "unix", Addr: l.Addr, LocalName: "client.test"}
	res, err := send(t, lt, envelope.New("a@example.org", "b@example.org", "c@example.org"))
	if err == nil || res.Rcpts[0].Outcome != transport.Accepted || res.Rcpts[1].Outcome != transport.TempFailed {
		t.Fatalf("LMTP: %v %+v", err, res)
	}
	l.Wait(5 * time.Second)
	if d := l.Deliveries(); len(d) != 1 || strings.Join(d[0].Accepted, ",") != "b@example.org" {
		t.Errorf("deliveries %+v", d)
	}
}

func TestAutoAnswerCloseAndStall(t *testing.T) {
	s := start(t, Options{}, Auto(AutoConfig{Caps: Caps("PIPELINING"), Answer: func(c Command) Response {
		if c.Verb == "RCPT" {
			return Response{Text: "451 4.3.0 bye\r\n", Close: true}
		}
		return Response{}
	}}))
	tr := &transport.SMTP{Addr: s.Addr, Security: transport.Plaintext, LocalName: "client.test"}
	if _, err := send(t, tr, envelope.New("a@example.org", "b@example.org")); !errors.Is(err, transport.ErrTransient) {
		t.Errorf("err = %v, want transient", err)
	}
	s = start(t, Options{}, Auto(AutoConfig{Answer: func(c Command) Response {
		if c.Verb == "GREETING" {
			return Response{Stall: true}
		}
		return Response{}
	}}))
	tr.Addr = s.Addr
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	begin := time.Now()
	_, err := tr.Send(ctx, envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg))
	if err == nil || time.Since(begin) > 3*time.Second {
		t.Errorf("stalled greeting: %v after %v", err, time.Since(begin))
	}
}
