package transport_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/scripted"
	. "github.com/mailwire/mailwire/internal/scripted"
	"github.com/mailwire/mailwire/transport"
)

// These tests use a scripted server, for faults a real server does not
// produce. Behaviour a real server shows is tested against smtptest.

const ehloPlain = "250-fake.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES"

func startScript(t *testing.T, steps ...Step) *scripted.Server {
	t.Helper()
	s, err := Start(steps...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func plainTransport(s *scripted.Server) *transport.SMTP {
	return &transport.SMTP{Addr: s.Addr, Security: transport.Plaintext, LocalName: "client.example",
		Pool: transport.PoolConfig{MaxIdleConns: -1}}
}

const msg = "Subject: hi\r\n\r\nbody\r\n"

func TestDropAfterFinalDotIsUnknown(t *testing.T) {
	s := startScript(t,
		Reply("220 fake ESMTP"), Expect("EHLO"), Reply(ehloPlain),
		Expect("MAIL FROM:<a@example.org>"), Expect("RCPT TO:<b@example.org>"), Expect("DATA"),
		Reply("250 2.1.0 ok", "250 2.1.5 ok", "354 go"),
		ExpectData(), Close(),
	)
	res, err := plainTransport(s).Send(context.Background(), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg))
	if !errors.Is(err, transport.ErrUnknownOutcome) {
		t.Fatalf("err = %v, want ErrUnknownOutcome", err)
	}
	if errors.Is(err, transport.ErrTransient) {
		t.Errorf("unknown outcome must not be transient: %v", err)
	}
	var oe *transport.OpError
	if !errors.As(err, &oe) || oe.Op != transport.OpEndOfData {
		t.Errorf("err = %v, want OpError at end-of-data", err)
	}
	if got := res.Rcpts[0].Outcome; got != transport.Unknown {
		t.Errorf("outcome = %v, want unknown", got)
	}
}

func TestDropBeforeFinalDotIsTransient(t *testing.T) {
	s := startScript(t,
		Reply("220 fake ESMTP"), Expect("EHLO"), Reply(ehloPlain),
		Expect("MAIL"), Expect("RCPT"), Expect("DATA"),
		Reply("250 ok", "250 ok", "354 go"), Close(),
	)
	body := strings.Repeat("a line of the message body\r\n", 200000)
	res, err := plainTransport(s).Send(context.Background(), envelope.New("a@example.org", "b@example.org"), strings.NewReader(body))
	if !errors.Is(err, transport.ErrTransient) {
		t.Fatalf("err = %v, want ErrTransient", err)
	}
	if got := res.Rcpts[0].Outcome; got != transport.TempFailed {
		t.Errorf("outcome = %v, want temp-failed", got)
	}
}

func TestGarbageReplies(t *testing.T) {
	for name, reply := range map[string]string{
		"garbage greeting":  "hello there\r\n",
		"oversized line":    "220 " + strings.Repeat("x", 10000) + "\r\n",
		"mixed codes":       "220-a\r\n250 b\r\n",
		"tls record":        "\x16\x03\x01\x00\x05hello\r\n",
		"endless multiline": strings.Repeat("220-x\r\n", 600) + "220 y\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			s := startScript(t, Send(reply), WaitClose(5*time.Second))
			_, err := plainTransport(s).Send(context.Background(), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg))
			var pe *transport.ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *ProtocolError", err)
			}
			var oe *transport.OpError
			if !errors.As(err, &oe) || oe.Op != transport.OpGreeting {
				t.Errorf("err = %v, want op greeting", err)
			}
			if err := s.Wait(5 * time.Second); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestStalledGreetingHonoursContext(t *testing.T) {
	s := startScript(t, Stall(10*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := plainTransport(s).Send(ctx, envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg))
	if time.Since(start) > 5*time.Second {
		t.Fatalf("Send took %v", time.Since(start))
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if errors.Is(err, transport.ErrTransient) {
		t.Errorf("the caller's deadline must not be transient: %v", err)
	}
	var oe *transport.OpError
	if !errors.As(err, &oe) || oe.Op != transport.OpGreeting {
		t.Errorf("err = %v, want op greeting", err)
	}
	if res == nil || res.Rcpts[0].Outcome != transport.TempFailed {
		t.Errorf("result = %+v", res)
	}
}

func TestStartTLSResponseInjection(t *testing.T) {
	s := startScript(t,
		Reply("220 fake ESMTP"), Expect("EHLO"),
		Reply("250-fake", "250-STARTTLS", "250 PIPELINING"),
		Expect("STARTTLS"),
		// The injected lines arrive in the same segment as the 220.
		Send("220 go ahead\r\n250-evil\r\n250 AUTH PLAIN LOGIN\r\n"),
		WaitClose(5*time.Second),
	)
	tr := &transport.SMTP{Addr: s.Addr, Security: transport.StartTLS, TLSConfig: &tls.Config{RootCAs: CertPool()}, LocalName: "client.example"}
	_, err := tr.Send(context.Background(), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg))
	var pe *transport.ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want *ProtocolError", err)
	}
	if got := s.Received(); strings.Contains(got, "MAIL") || strings.Contains(got, "AUTH") {
		t.Errorf("client sent %q after injection", got)
	}
}

func TestStartTLSRequiredNotOffered(t *testing.T) {
	s := startScript(t,
		Reply("220 fake ESMTP"), Expect("EHLO"),
		Reply("250-fake", "250-AUTH PLAIN LOGIN", "250 PIPELINING"),
		Expect("QUIT"), Reply("221 bye"),
	)
	tr := &transport.SMTP{Addr: s.Addr, LocalName: "client.example"} // zero Security: STARTTLS required
	_, err := tr.Send(context.Background(), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg))
	var ne *transport.NotSupportedError
	if !errors.As(err, &ne) || ne.Extension != "STARTTLS" {
		t.Fatalf("err = %v, want NotSupportedError STARTTLS", err)
	}
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Error("not errors.ErrUnsupported")
	}
	if err := s.Wait(5 * time.Second); err != nil {
		t.Error(err)
	}
	if got := s.Received(); strings.Contains(got, "MAIL") || strings.Contains(got, "AUTH") {
		t.Errorf("client sent %q in clear", got)
	}
}

func TestStartTLSRefused(t *testing.T) {
	for _, code := range []string{"454 4.7.0 TLS not available", "502 5.5.1 no", "500 what", "501 x", "354 odd", "221 bye", "421 4.3.2 closing"} {
		t.Run(code[:3], func(t *testing.T) {
			s := startScript(t,
				Reply("220 fake ESMTP"), Expect("EHLO"), Reply("250-fake", "250 STARTTLS"),
				Expect("STARTTLS"), Reply(code), WaitClose(5*time.Second),
			)
			tr := &transport.SMTP{Addr: s.Addr, LocalName: "client.example"}
			_, err := tr.Send(context.Background(), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg))
			var oe *transport.OpError
			if !errors.As(err, &oe) || oe.Op != transport.OpStartTLS {
				t.Fatalf("err = %v, want OpError starttls", err)
			}
			if got := s.Received(); strings.Contains(got, "MAIL") {
				t.Errorf("client sent MAIL in clear: %q", got)
			}
		})
	}
}

func TestHELOFallback(t *testing.T) {
	// Plaintext: EHLO refused with 502 falls back to HELO.
	s := startScript(t,
		Reply("220 old server"), Expect("EHLO"), Reply("502 5.5.2 command not recognized"),
		Expect("HELO client.example"), Reply("250 old"),
		Expect("MAIL FROM:<a@example.org>"), Reply("250 ok"),
		Expect("RCPT TO:<b@example.org>"), Reply("250 ok"),
		Expect("DATA"), Reply("354 go"), ExpectData(), Reply("250 queued"),
		Expect("QUIT"), Reply("221 bye"),
	)
	res, err := plainTransport(s).Send(context.Background(), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if res.Rcpts[0].Outcome != transport.Accepted {
		t.Errorf("outcome %v", res.Rcpts[0].Outcome)
	}
	if err := s.Wait(5 * time.Second); err != nil {
		t.Error(err)
	}
	if strings.Contains(s.Received(), "BODY=") {
		t.Error("ESMTP parameter sent to an SMTP-only server")
	}

	// STARTTLS required: no fallback.
	s2 := startScript(t, Reply("220 old server"), Expect("EHLO"), Reply("500 what"), WaitClose(5*time.Second))
	tr := &transport.SMTP{Addr: s2.Addr, LocalName: "client.example"}
	_, err = tr.Send(context.Background(), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg))
	if err == nil || strings.Contains(s2.Received(), "HELO") {
		t.Fatalf("err = %v, received %q: HELO fallback with STARTTLS required", err, s2.Received())
	}
}

func TestAllRecipientsRefusedPipelinedLoneDot(t *testing.T) {
	s := startScript(t,
		Reply("220 fake ESMTP"), Expect("EHLO"), Reply(ehloPlain),
		Expect("MAIL"), Expect("RCPT TO:<b@"), Expect("RCPT TO:<c@"), Expect("DATA"),
		// A broken server accepts DATA although no recipient was accepted.
		Reply("250 ok", "550 5.1.1 no b", "450 4.2.0 not now c", "354 go"),
		Expect("."), Reply("554 5.5.1 no valid recipients"),
		Expect("QUIT"), Reply("221 bye"),
	)
	res, err := plainTransport(s).Send(context.Background(), envelope.New("a@example.org", "b@example.org", "c@example.org"), strings.NewReader(msg))
	if err == nil {
		t.Fatal("Send succeeded")
	}
	if got := res.Rcpts[0].Outcome; got != transport.PermFailed {
		t.Errorf("b: %v", got)
	}
	if got := res.Rcpts[1].Outcome; got != transport.TempFailed {
		t.Errorf("c: %v", got)
	}
	if err := s.Wait(5 * time.Second); err != nil {
		t.Error(err)
	}
	if strings.Contains(s.Received(), "Subject: hi") {
		t.Error("message content sent although every recipient was refused")
	}
}

func Test421AtEachStage(t *testing.T) {
	greet := []Step{Reply("220 fake ESMTP"), Expect("EHLO")}
	stages := map[string][]Step{
		"greeting": {Reply("421 4.3.2 busy"), WaitClose(5 * time.Second)},
		"ehlo":     append(greet[:2:2], Reply("421 4.3.2 busy"), WaitClose(5*time.Second)),
		"mail": append(greet[:2:2], Reply("250 fake"), Expect("MAIL"), Reply("421 4.3.2 closing"),
			WaitClose(5*time.Second)),
		"rcpt": append(greet[:2:2], Reply("250 fake"), Expect("MAIL"), Reply("250 ok"), Expect("RCPT"),
			Reply("421 4.3.2 closing"), WaitClose(5*time.Second)),
		"data": append(greet[:2:2], Reply("250 fake"), Expect("MAIL"), Reply("250 ok"), Expect("RCPT"),
			Reply("250 ok"), Expect("DATA"), Reply("421 4.3.2 closing"), WaitClose(5*time.Second)),
		"end-of-data": append(greet[:2:2], Reply("250 fake"), Expect("MAIL"), Reply("250 ok"), Expect("RCPT"),
			Reply("250 ok"), Expect("DATA"), Reply("354 go"), ExpectData(), Reply("421 4.3.2 closing"), WaitClose(5*time.Second)),
	}
	for name, steps := range stages {
		t.Run(name, func(t *testing.T) {
			if name == "greeting" {
				steps = append([]Step{}, steps...)
			}
			s := startScript(t, steps...)
			res, err := plainTransport(s).Send(context.Background(), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg))
			if !errors.Is(err, transport.ErrTransient) {
				t.Fatalf("err = %v, want transient", err)
			}
			var re *transport.ReplyError
			if !errors.As(err, &re) || re.Code != 421 {
				t.Errorf("err = %v, want the 421 reply", err)
			}
			if res.Rcpts[0].Outcome != transport.TempFailed {
				t.Errorf("outcome %v", res.Rcpts[0].Outcome)
			}
			if err := s.Wait(5 * time.Second); err != nil {
				t.Error(err)
			}
			if strings.Contains(s.Received(), "RSET") {
				t.Error("RSET sent after 421")
			}
		})
	}
}

func TestInjectionRefusedBeforeWriting(t *testing.T) {
	evil := []*envelope.Envelope{
		envelope.New("a@example.org>\r\nRCPT TO:<evil@example.net", "b@example.org"),
		envelope.New("a@example.org", "b@example.org>\r\nDATA"),
		envelope.New("a@example.org", "\"x\r\nDATA\"@example.org"),
		envelope.New("a@example.org\n", "b@example.org"),
		envelope.New("a@example.org", "b@exa\x00mple.org"),
	}
	for i, env := range evil {
		s := startScript(t, Reply("220 fake ESMTP"), Expect("EHLO"), Reply(ehloPlain), Expect("QUIT"), Reply("221 bye"))
		c, err := plainTransport(s).Dial(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Send(context.Background(), env, strings.NewReader(msg))
		if !errors.Is(err, transport.ErrPermanent) {
			t.Errorf("%d: err = %v, want permanent", i, err)
		}
		var ee *envelope.Error
		if !errors.As(err, &ee) {
			t.Errorf("%d: err = %v, want *envelope.Error", i, err)
		}
		c.Close()
		if err := s.Wait(5 * time.Second); err != nil {
			t.Errorf("%d: %v", i, err)
		}
		if got := s.Received(); strings.Contains(got, "MAIL") || strings.Contains(got, "RCPT") {
			t.Errorf("%d: client wrote %q", i, got)
		}
	}
	// Raw commands go through the same choke point.
	s := startScript(t, Reply("220 fake ESMTP"), Expect("EHLO"), Reply(ehloPlain), Expect("QUIT"), Reply("221 bye"))
	c, err := plainTransport(s).Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"NOOP\r\nMAIL FROM:<x@y>", "VRFY a\nb", "HELP \x00"} {
		if _, err := c.Command(context.Background(), line); err == nil {
			t.Errorf("Command(%q) = nil", line)
		}
	}
	if _, err := c.Verify(context.Background(), "x\r\nDATA"); err == nil {
		t.Error("Verify with CRLF = nil")
	}
	c.Close()
	s.Wait(5 * time.Second)
	if got := s.Received(); strings.Contains(got, "MAIL") || strings.Contains(got, "VRFY") {
		t.Errorf("client wrote %q", got)
	}
	// EHLO name.
	s = startScript(t, Reply("220 fake ESMTP"), WaitClose(5*time.Second))
	tr := plainTransport(s)
	tr.LocalName = "host\r\nMAIL FROM:<x@y>"
	if _, err := tr.Send(context.Background(), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg)); err == nil {
		t.Error("bad EHLO name accepted")
	}
	s.Wait(5 * time.Second)
	if got := s.Received(); strings.Contains(got, "MAIL") || strings.Contains(got, "EHLO") {
		t.Errorf("client wrote %q", got)
	}
}

func TestCancelMidDataDeliversNothing(t *testing.T) {
	s := startScript(t,
		Reply("220 fake ESMTP"), Expect("EHLO"), Reply(ehloPlain),
		Expect("MAIL"), Expect("RCPT"), Expect("DATA"), Reply("250 ok", "250 ok", "354 go"),
		WaitClose(10*time.Second),
	)
	ctx, cancel := context.WithCancel(context.Background())
	body := &slowBody{cancel: cancel, after: 3}
	start := time.Now()
	res, err := plainTransport(s).Send(ctx, envelope.New("a@example.org", "b@example.org"), body)
	if time.Since(start) > 5*time.Second {
		t.Fatalf("Send took %v after cancel", time.Since(start))
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}
	if res.Rcpts[0].Outcome != transport.TempFailed {
		t.Errorf("outcome %v", res.Rcpts[0].Outcome)
	}
	if err := s.Wait(5 * time.Second); err != nil {
		t.Error(err)
	}
	if strings.Contains(s.Received(), "\r\n.\r\n") {
		t.Error("end-of-data sent after cancellation")
	}
}

// slowBody yields lines and cancels the context after a few reads, then
// keeps yielding so that only cancellation can stop the copy.
type slowBody struct {
	n      int
	after  int
	cancel func()
}

func (b *slowBody) Read(p []byte) (int, error) {
	b.n++
	if b.n == b.after {
		b.cancel()
	}
	if b.n > b.after {
		time.Sleep(time.Millisecond)
	}
	return copy(p, bytes.Repeat([]byte("data line\r\n"), 100)), nil
}

func TestEightBitWithout8BITMIME(t *testing.T) {
	ehlo7 := "250-fake.example\r\n250 PIPELINING"
	// Declared 8BITMIME: refused before MAIL.
	s := startScript(t, Reply("220 fake ESMTP"), Expect("EHLO"), Reply(ehlo7), Expect("QUIT"), Reply("221 bye"))
	env := envelope.New("a@example.org", "b@example.org")
	env.Body = envelope.Body8BitMIME
	_, err := plainTransport(s).Send(context.Background(), env, strings.NewReader("caf\xe9\r\n"))
	var ne *transport.NotSupportedError
	if !errors.As(err, &ne) || ne.Extension != "8BITMIME" {
		t.Fatalf("err = %v, want NotSupportedError 8BITMIME", err)
	}
	s.Wait(5 * time.Second)
	if strings.Contains(s.Received(), "MAIL") {
		t.Errorf("MAIL sent: %q", s.Received())
	}
	// Undeclared 8-bit content in a body that can seek: found by a scan and
	// refused before MAIL.
	s = startScript(t, Reply("220 fake ESMTP"), Expect("EHLO"), Reply(ehlo7), Expect("QUIT"), Reply("221 bye"))
	body := strings.NewReader("Subject: x\r\n\r\ncaf\xe9\r\n")
	_, err = plainTransport(s).Send(context.Background(), envelope.New("a@example.org", "b@example.org"), body)
	if !errors.As(err, &ne) || ne.Extension != "8BITMIME" {
		t.Fatalf("seekable: err = %v, want NotSupportedError 8BITMIME", err)
	}
	s.Wait(5 * time.Second)
	if strings.Contains(s.Received(), "MAIL") {
		t.Errorf("seekable: MAIL sent: %q", s.Received())
	}
	if body.Len() != int(body.Size()) {
		t.Errorf("seekable: body left at %d of %d, want rewound", body.Size()-int64(body.Len()), body.Size())
	}
	// Undeclared 8-bit content in a body that cannot seek: the data is
	// abandoned without its end.
	s = startScript(t, Reply("220 fake ESMTP"), Expect("EHLO"), Reply(ehlo7),
		Expect("MAIL FROM:<a@example.org>"), Expect("RCPT"), Expect("DATA"),
		Reply("250 ok", "250 ok", "354 go"), WaitClose(5*time.Second))
	res, err := plainTransport(s).Send(context.Background(), envelope.New("a@example.org", "b@example.org"), io.MultiReader(strings.NewReader("Subject: x\r\n\r\ncaf\xe9\r\n")))
	if !errors.As(err, &ne) || ne.Extension != "8BITMIME" {
		t.Fatalf("err = %v, want NotSupportedError 8BITMIME", err)
	}
	if res.Rcpts[0].Outcome != transport.PermFailed {
		t.Errorf("outcome %v", res.Rcpts[0].Outcome)
	}
	if err := s.Wait(5 * time.Second); err != nil {
		t.Error(err)
	}
	if strings.Contains(s.Received(), "\r\n.\r\n") || strings.Contains(s.Received(), "BODY=") {
		t.Errorf("client sent %q", s.Received())
	}
}

func TestNoPipeliningWithoutExtension(t *testing.T) {
	// Each command must wait for its reply: the script only replies after
	// reading exactly one command, so a pipelining client would trip it.
	s := startScript(t,
		Reply("220 fake ESMTP"), Expect("EHLO"), Reply("250-fake", "250 8BITMIME"),
		Expect("MAIL"), Reply("250 ok"), Expect("RCPT TO:<b@"), Reply("250 ok"),
		Expect("RCPT TO:<c@"), Reply("550 no"), Expect("DATA"), Reply("354 go"),
		ExpectData(), Reply("250 queued"), Expect("QUIT"), Reply("221 bye"),
	)
	res, err := plainTransport(s).Send(context.Background(), envelope.New("a@example.org", "b@example.org", "c@example.org"), strings.NewReader(msg))
	if err == nil || res.Rcpts[0].Outcome != transport.Accepted || res.Rcpts[1].Outcome != transport.PermFailed {
		t.Fatalf("err = %v res = %+v", err, res)
	}
	if err := s.Wait(5 * time.Second); err != nil {
		t.Error(err)
	}
}

func TestTranscriptRedactsAuth(t *testing.T) {
	// A scripted AUTH LOGIN exchange whose challenges must not be shown.
	s := startScript(t,
		Reply("220 fake ESMTP"), Expect("EHLO"), Reply("250-fake", "250 AUTH LOGIN"),
		Expect("AUTH LOGIN"), Reply("334 VXNlcm5hbWU6"), Expect(""), Reply("334 UGFzc3dvcmQ6"), Expect(""),
		Reply("235 2.7.0 ok"), Expect("MAIL"), Reply("250 ok"), Expect("RCPT"), Reply("250 ok"),
		Expect("DATA"), Reply("354 go"), ExpectData(), Reply("250 ok"), Expect("QUIT"), Reply("221 bye"),
	)
	var transcript bytes.Buffer
	tr := plainTransport(s)
	tr.Debug = &transcript
	tr.Auth = auth.Config{Credentials: auth.Credentials{Username: "bob", Password: "hunter2-hunter2"}, Mechanisms: []string{"LOGIN"}, AllowInsecure: true}
	if _, err := tr.Send(context.Background(), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	got := transcript.String()
	for _, secret := range []string{"hunter2", "aHVudGVyMi1odW50ZXIy", "Ym9i", "VXNlcm5hbWU6"} {
		if strings.Contains(got, secret) {
			t.Errorf("transcript contains %q:\n%s", secret, got)
		}
	}
	// LOGIN sends no initial response: the AUTH line is shown bare.
	if !strings.Contains(got, "C: AUTH LOGIN\n") || !strings.Contains(got, "S: 334 [redacted]") {
		t.Errorf("transcript:\n%s", got)
	}
	if !strings.Contains(s.Received(), "aHVudGVyMi1odW50ZXIy") {
		t.Error("the password was not actually sent to the server")
	}
}

func TestAuthChallengesForeverAreCutOff(t *testing.T) {
	steps := []Step{Reply("220 fake ESMTP"), Expect("EHLO"), Reply("250-fake", "250 AUTH LOGIN"), Expect("AUTH LOGIN")}
	for range 40 {
		steps = append(steps, Reply("334 VXNlcm5hbWU6"), Expect(""))
	}
	s := startScript(t, append(steps, WaitClose(5*time.Second))...)
	tr := plainTransport(s)
	tr.Auth = auth.Config{Credentials: auth.Credentials{Username: "bob", Password: "pw-pw-pw-pw"}, Mechanisms: []string{"LOGIN"}, AllowInsecure: true}
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := tr.Send(c, envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg))
	var oe *transport.OpError
	if !errors.As(err, &oe) || oe.Op != transport.OpAuth {
		t.Fatalf("err = %v, want an auth error", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the exchange was stopped by the deadline, not by the round limit: %v", err)
	}
	if got := strings.Count(s.Received(), "\r\n"); got > 40 {
		t.Errorf("client answered %d lines", got)
	}
	if !strings.Contains(s.Received(), "*\r\n") {
		t.Error("client did not cancel with *")
	}
}

// TestLMTPDropAfterSomeReplies: after the end of the data an LMTP server
// answers once per recipient; if the connection drops after k of n replies,
// the k are definitive and the rest unknown.
func TestLMTPDropAfterSomeReplies(t *testing.T) {
	s := startScript(t,
		Reply("220 fake LMTP"), Expect("LHLO"), Reply("250-fake", "250 PIPELINING"),
		Expect("MAIL"), Expect("RCPT TO:<a@"), Expect("RCPT TO:<b@"), Expect("RCPT TO:<c@"),
		Reply("250 ok", "250 ok", "250 ok", "250 ok"),
		Expect("DATA"), Reply("354 go"), ExpectData(),
		Reply("250 2.0.0 <a@example.org> delivered", "452 4.2.2 <b@example.org> over quota"),
		Close(),
	)
	tr := &transport.LMTP{Network: "tcp", Addr: s.Addr, LocalName: "client.example", Pool: transport.PoolConfig{MaxIdleConns: -1}}
	res, err := tr.Send(context.Background(), envelope.New("s@example.org", "a@example.org", "b@example.org", "c@example.org"), strings.NewReader(msg))
	want := []transport.Outcome{transport.Accepted, transport.TempFailed, transport.Unknown}
	for i, w := range want {
		if got := res.Rcpts[i].Outcome; got != w {
			t.Errorf("rcpt %d = %v, want %v", i, got, w)
		}
	}
	if !errors.Is(err, transport.ErrUnknownOutcome) || !errors.Is(err, transport.ErrTransient) {
		t.Errorf("err = %v: want both the transient refusal and the unknown outcome", err)
	}
	var oe *transport.OpError
	if errors.As(err, &oe) && oe.Op != transport.OpEndOfData {
		t.Errorf("a partial LMTP success reported as a whole failure at %s", oe.Op)
	}
}
