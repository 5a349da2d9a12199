package reliability_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/dataenc"
	"github.com/mailwire/mailwire/internal/faultproxy"
	"github.com/mailwire/mailwire/internal/scripted"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// The catalogue's attack cases (A-cases). Each case is counted in the
// figure attack-refused: refused before a byte is written, or detected and
// aborted, with the wire checked.

var figAttack = newFigure("attack-refused")

// attack records one case's verdict.
func attack(t *testing.T, name string, problems []string) {
	t.Helper()
	figAttack.add(len(problems) == 0)
	if len(problems) > 0 {
		t.Errorf("attack %s: %s", name, strings.Join(problems, "\n  "))
	}
}

// wireProblems checks client bytes in the command phase: only CRLF line
// endings, no bare CR or LF, no NUL.
func wireProblems(b string) []string {
	var p []string
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\r':
			if i+1 >= len(b) || b[i+1] != '\n' {
				p = append(p, fmt.Sprintf("bare CR at %d in %q", i, b))
			}
		case '\n':
			if i == 0 || b[i-1] != '\r' {
				p = append(p, fmt.Sprintf("bare LF at %d in %q", i, b))
			}
		case 0:
			p = append(p, fmt.Sprintf("NUL at %d in %q", i, b))
		}
	}
	return p
}

func lines(b string) []string {
	return strings.Split(strings.TrimSuffix(b, "\r\n"), "\r\n")
}

// hasLine reports whether a received line starts with prefix
// (case-insensitively).
func hasLine(b, prefix string) bool {
	for _, l := range lines(b) {
		if strings.HasPrefix(strings.ToUpper(l), strings.ToUpper(prefix)) {
			return true
		}
	}
	return false
}

// injections are the payloads put into every field: line breaks and NUL,
// and characters whose conversion to a byte (or to a line separator)
// yields one.
var injections = []struct {
	name string
	s    string
	kind string // "break": CR, LF or NUL; "separator": a Unicode line or C1 separator; "convert": dangerous only if converted to a byte
}{
	{"CRLF", "\r\n", "break"}, {"CR", "\r", "break"}, {"LF", "\n", "break"}, {"LFCR", "\n\r", "break"},
	{"NUL", "\x00", "break"}, {"CRNUL", "\r\x00\n", "break"},
	{"U+2028", "\u2028", "separator"}, {"U+2029", "\u2029", "separator"}, {"U+0085", "\u0085", "separator"},
	{"U+010A", "\u010a", "convert"}, {"U+010D", "\u010d", "convert"}, {"U+760A", "\u760a", "convert"}, {"U+760D", "\u760d", "convert"},
}

const evilLine = "RCPT TO:<evil@example.net>"

var attackCaps = scripted.Caps("PIPELINING", "8BITMIME", "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES", "AUTH PLAIN LOGIN")

// injectionField is one place a payload goes.
type injectionField struct {
	name string
	cmd  string // the command that must not be written when refused
	run  func(ctx context.Context, tr *transport.SMTP, x string) error
}

// strictUnicode reports whether the field must also refuse Unicode line
// separators: the envelope validator and the EHLO name refuse them; raw
// commands and credentials (sent in base64) may carry them intact.
func (f injectionField) strictUnicode() bool {
	switch f.cmd {
	case "AUTH", "NOOP", "VRFY", "HELP":
		return false
	}
	return true
}

var injectionFields = []injectionField{
	{"from", "MAIL", func(ctx context.Context, tr *transport.SMTP, x string) error {
		_, err := tr.Send(ctx, envelope.New("a@example.org"+x+evilLine, "b@example.org"), strings.NewReader(refMessage))
		return err
	}},
	{"from-local", "MAIL", func(ctx context.Context, tr *transport.SMTP, x string) error {
		_, err := tr.Send(ctx, envelope.New("a"+x+"b@example.org", "b@example.org"), strings.NewReader(refMessage))
		return err
	}},
	{"to", "RCPT", func(ctx context.Context, tr *transport.SMTP, x string) error {
		_, err := tr.Send(ctx, envelope.New("a@example.org", "b@example.org"+x+"DATA"), strings.NewReader(refMessage))
		return err
	}},
	{"to-quoted", "RCPT", func(ctx context.Context, tr *transport.SMTP, x string) error {
		_, err := tr.Send(ctx, envelope.New("a@example.org", "\"x"+x+"DATA\"@example.org"), strings.NewReader(refMessage))
		return err
	}},
	{"envid", "MAIL", func(ctx context.Context, tr *transport.SMTP, x string) error {
		env := envelope.New("a@example.org", "b@example.org")
		env.EnvID = "id" + x + evilLine
		_, err := tr.Send(ctx, env, strings.NewReader(refMessage))
		return err
	}},
	{"orcpt", "RCPT", func(ctx context.Context, tr *transport.SMTP, x string) error {
		env := envelope.New("a@example.org", "b@example.org")
		env.To[0].ORcpt = "c@example.org" + x + "DATA"
		_, err := tr.Send(ctx, env, strings.NewReader(refMessage))
		return err
	}},
	{"notify", "RCPT", func(ctx context.Context, tr *transport.SMTP, x string) error {
		env := envelope.New("a@example.org", "b@example.org")
		env.To[0].Notify = []envelope.DSNNotify{envelope.DSNNotify("SUCCESS" + x + "DATA")}
		_, err := tr.Send(ctx, env, strings.NewReader(refMessage))
		return err
	}},
	{"body-param", "MAIL", func(ctx context.Context, tr *transport.SMTP, x string) error {
		env := envelope.New("a@example.org", "b@example.org")
		env.Body = envelope.BodyType("8BITMIME" + x + evilLine)
		_, err := tr.Send(ctx, env, strings.NewReader(refMessage))
		return err
	}},
	{"ret-param", "MAIL", func(ctx context.Context, tr *transport.SMTP, x string) error {
		env := envelope.New("a@example.org", "b@example.org")
		env.Return = envelope.DSNReturn("FULL" + x + evilLine)
		_, err := tr.Send(ctx, env, strings.NewReader(refMessage))
		return err
	}},
	{"ehlo-name", "EHLO", func(ctx context.Context, tr *transport.SMTP, x string) error {
		tr.LocalName = "client.test" + x + "MAIL FROM:<x@y>"
		_, err := tr.Send(ctx, envelope.New("a@example.org", "b@example.org"), strings.NewReader(refMessage))
		return err
	}},
	{"username-plain", "AUTH", func(ctx context.Context, tr *transport.SMTP, x string) error {
		tr.Auth = auth.Config{Credentials: auth.Credentials{Username: "bob" + x + "MAIL FROM:<x@y>", Password: testPassword}, Mechanisms: []string{"PLAIN"}, AllowInsecure: true}
		_, err := tr.Send(ctx, envelope.New("a@example.org", "b@example.org"), strings.NewReader(refMessage))
		return err
	}},
	{"password-login", "AUTH", func(ctx context.Context, tr *transport.SMTP, x string) error {
		tr.Auth = auth.Config{Credentials: auth.Credentials{Username: "bob", Password: "pw" + x + "MAIL FROM:<x@y>"}, Mechanisms: []string{"LOGIN"}, AllowInsecure: true}
		_, err := tr.Send(ctx, envelope.New("a@example.org", "b@example.org"), strings.NewReader(refMessage))
		return err
	}},
	{"authzid-plain", "AUTH", func(ctx context.Context, tr *transport.SMTP, x string) error {
		tr.Auth = auth.Config{Credentials: auth.Credentials{Identity: "admin" + x, Username: "bob", Password: testPassword}, Mechanisms: []string{"PLAIN"}, AllowInsecure: true}
		_, err := tr.Send(ctx, envelope.New("a@example.org", "b@example.org"), strings.NewReader(refMessage))
		return err
	}},
	{"raw-command", "NOOP", func(ctx context.Context, tr *transport.SMTP, x string) error {
		c, err := tr.Dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Command(ctx, "NOOP"+x+"MAIL FROM:<x@y>")
		return err
	}},
	{"vrfy", "VRFY", func(ctx context.Context, tr *transport.SMTP, x string) error {
		c, err := tr.Dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Verify(ctx, "bob"+x+"DATA")
		return err
	}},
	{"help", "HELP", func(ctx context.Context, tr *transport.SMTP, x string) error {
		c, err := tr.Dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Help(ctx, "topic"+x+"DATA")
		return err
	}},
}

// TestAttackInjection puts every payload into every field that ends up
// in a command line (A01-A06, A26, A05 for raw commands) and checks what
// the server received.
func TestAttackInjection(t *testing.T) {
	for _, f := range injectionFields {
		for _, inj := range injections {
			name := f.name + "/" + inj.name
			s, err := scripted.StartWith(scripted.Options{Conns: -1}, scripted.Auto(scripted.AutoConfig{Caps: attackCaps}))
			if err != nil {
				t.Fatal(err)
			}
			tr := &transport.SMTP{Addr: s.Addr, Security: transport.Plaintext, LocalName: localName}
			ctx, cancel := context.WithTimeout(context.Background(), runDeadline)
			cerr := f.run(ctx, tr, inj.s)
			cancel()
			transport.CloseIdleConnections(tr)
			s.Close()
			recv := s.Received()
			var p []string
			p = append(p, wireProblems(recv)...)
			if hasLine(recv, evilLine) || hasLine(recv, "MAIL FROM:<x@y>") {
				p = append(p, fmt.Sprintf("an injected command reached the server: %q", recv))
			}
			for _, l := range lines(recv) {
				if l == "DATA" && !hasLine(recv, "RCPT") {
					p = append(p, "DATA without RCPT: injected")
				}
			}
			refused := cerr != nil && !hasLine(recv, f.cmd+" ") && !(f.cmd == "EHLO" && hasLine(recv, "EHLO")) && !hasLine(recv, f.cmd)
			if f.cmd == "AUTH" || f.cmd == "EHLO" || f.cmd == "NOOP" || f.cmd == "VRFY" || f.cmd == "HELP" {
				refused = cerr != nil && !hasLine(recv, f.cmd)
			}
			mustRefuse := inj.kind == "break" || inj.kind == "separator" && f.strictUnicode()
			switch {
			case mustRefuse && !refused:
				p = append(p, fmt.Sprintf("not refused before writing: err %v, server got %q", cerr, recv))
			case !refused && f.cmd != "AUTH" && !strings.Contains(recv, inj.s):
				// Sent: then only as its own UTF-8 bytes (credentials go in
				// base64, which wireProblems covers).
				p = append(p, fmt.Sprintf("%s sent converted: %q", inj.name, recv))
			}
			if cerr != nil && strings.Contains(cerr.Error(), "\r") {
				p = append(p, "the error text carries a raw CR")
			}
			attack(t, "injection "+name, p)
		}
	}
}

// smuggling holds message bodies that try to end the data early and
// start a second transaction (SMTP smuggling, A08-A10, B14).
var smuggling = func() []struct{ name, body string } {
	tail := "MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n"
	var out []struct{ name, body string }
	for _, v := range []struct{ name, eod string }{
		{"LF.LF", "\n.\n"}, {"LF.CRLF", "\n.\r\n"}, {"CRLF.LF", "\r\n.\n"}, {"CR.CR", "\r.\r"}, {"CR.CRLF", "\r.\r\n"},
		{"CRLF.CR", "\r\n.\r"}, {"LF.CR", "\n.\r"}, {"CRLF.CRLF", "\r\n.\r\n"}, {"CRLFCRLF.CRLF", "\r\n\r\n.\r\n"},
		{"CRLF.NULCRLF", "\r\n.\x00\r\n"}, {"CRLF.SPCRLF", "\r\n. \r\n"}, {"CRCRLF.CRLF", "\r\r\n.\r\n"}, {"LFLF.LF", "\n\n.\n"},
	} {
		out = append(out, struct{ name, body string }{v.name, "Subject: hi\r\n\r\nfirst" + v.eod + tail})
	}
	out = append(out,
		struct{ name, body string }{"leading-dot", ".\r\n" + tail},
		struct{ name, body string }{"leading-dot-LF", ".\n" + tail},
		struct{ name, body string }{"only-dot", "."},
		struct{ name, body string }{"ends-CRLF.CRLF", "Subject: x\r\n\r\nbody\r\n.\r\n"},
		struct{ name, body string }{"ends-CR", "Subject: x\r\n\r\nbody\r"},
		struct{ name, body string }{"ends-LF.", "Subject: x\r\n\r\nbody\n."},
		struct{ name, body string }{"empty", ""},
	)
	return out
}()

// TestAttackSmuggling sends every smuggling body to a real server (smtptest,
// which takes the message with BDAT) and to a DATA server (scripted), and
// checks that exactly one message arrives, whole, and that the DATA stream
// holds no end-of-data sequence but the last.
func TestAttackSmuggling(t *testing.T) {
	for _, sm := range smuggling {
		// BDAT, through a recording proxy in front of smtptest.
		srv := smtptest.NewUnstartedServer()
		srv.ErrorLog = quietLog
		srv.Start()
		p, err := faultproxy.Start(faultproxy.Config{Target: srv.Addr})
		if err != nil {
			t.Fatal(err)
		}
		tr := &transport.SMTP{Addr: p.Addr(), Security: transport.Plaintext, LocalName: localName}
		r := send(tr, runDeadline, envelope.New("a@example.org", "b@example.org"), sm.body)
		p.Close()
		srv.Close()
		var probs []string
		msgs := srv.Messages()
		want := dataenc.Normalize([]byte(sm.body))
		switch {
		case r.err != nil:
			probs = append(probs, fmt.Sprintf("send failed: %v", r.err))
		case len(msgs) != 1:
			probs = append(probs, fmt.Sprintf("%d messages arrived", len(msgs)))
		case !bytes.Equal(msgs[0].Data, want):
			probs = append(probs, fmt.Sprintf("stored %q, want %q", msgs[0].Data, want))
		}
		for _, m := range msgs {
			if m.From == "evil@attacker.example" {
				probs = append(probs, "the smuggled transaction was accepted")
			}
		}
		attack(t, "smuggling-bdat "+sm.name, probs)

		// DATA, on the scripted server: check the stream itself.
		s, err := scripted.StartWith(scripted.Options{}, scripted.Auto(scripted.AutoConfig{Caps: scripted.Caps("PIPELINING", "8BITMIME")}))
		if err != nil {
			t.Fatal(err)
		}
		tr = &transport.SMTP{Addr: s.Addr, Security: transport.Plaintext, LocalName: localName}
		r = send(tr, runDeadline, envelope.New("a@example.org", "b@example.org"), sm.body)
		s.Close()
		probs = nil
		d := s.Deliveries()
		switch {
		case r.err != nil:
			probs = append(probs, fmt.Sprintf("send failed: %v", r.err))
		case len(d) != 1:
			probs = append(probs, fmt.Sprintf("%d messages delivered", len(d)))
		default:
			stream := append(append([]byte(nil), d[0].Data...), ".\r\n"...)
			got, err := dataenc.Decode(stream)
			if err != nil {
				probs = append(probs, fmt.Sprintf("DATA stream not well formed: %v: %q", err, stream))
			} else if !bytes.Equal(got, want) {
				probs = append(probs, fmt.Sprintf("decoded %q, want %q", got, want))
			}
		}
		if cmds := s.Commands(); strings.Count(strings.Join(cmds, ","), "MAIL") != 1 {
			probs = append(probs, fmt.Sprintf("commands %v", cmds))
		}
		attack(t, "smuggling-data "+sm.name, probs)
	}
}

// TestAttackSTARTTLSInjection: bytes after the 220 reply to STARTTLS
// (A16, CVE-2021-22947 and kin), nothing written between STARTTLS and the
// handshake (A17), and EHLO said again after TLS with only the post-TLS
// capabilities used.
func TestAttackSTARTTLSInjection(t *testing.T) {
	ehlo := scripted.Caps("STARTTLS", "PIPELINING", "AUTH PLAIN LOGIN")
	tlsCfg := &tls.Config{RootCAs: scripted.CertPool()}
	newTr := func(s *scripted.Server, sec transport.Security) *transport.SMTP {
		return &transport.SMTP{Addr: s.Addr, Security: sec, TLSConfig: tlsCfg, LocalName: localName,
			Auth: auth.Config{Credentials: auth.Credentials{Username: testUser, Password: testPassword}, Mechanisms: []string{"PLAIN"}}}
	}
	inClear := func(s *scripted.Server) []string {
		recv := s.Received()
		var p []string
		for _, c := range []string{"AUTH", "MAIL", "RCPT"} {
			if hasLine(recv, c) {
				p = append(p, c+" written in clear")
			}
		}
		return p
	}
	for _, inj := range []struct{ name, extra string }{
		{"ehlo-reply", "250-evil.example\r\n250 AUTH PLAIN LOGIN\r\n"},
		{"auth-ok", "235 2.7.0 authenticated\r\n"},
		{"partial-line", "250 "},
	} {
		s, err := scripted.Start(scripted.Reply("220 fake ESMTP"), scripted.Expect("EHLO"), ehlo.Reply("fake"),
			scripted.Expect("STARTTLS"), scripted.ReplyInject(inj.extra, "220 2.0.0 go ahead"), scripted.WaitClose(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		r := send(newTr(s, transport.StartTLS), runDeadline, refEnvelope(), refMessage)
		s.Close()
		p := inClear(s)
		oe := opError(r.err)
		var pe *transport.ProtocolError
		if oe == nil || oe.Op != transport.OpStartTLS || !errors.As(r.err, &pe) {
			p = append(p, fmt.Sprintf("err = %v, want a protocol error at starttls", r.err))
		}
		if i := strings.Index(s.Received(), "STARTTLS\r\n"); i >= 0 && strings.Contains(s.Received()[i+10:], "\x16\x03") {
			p = append(p, "TLS handshake started over injected bytes")
		}
		attack(t, "starttls-injection "+inj.name, p)
	}
	// The injection in a later segment, once the handshake has begun: the
	// plaintext bytes break the handshake.
	s, err := scripted.Start(scripted.Reply("220 fake ESMTP"), scripted.Expect("EHLO"), ehlo.Reply("fake"),
		scripted.Expect("STARTTLS"), scripted.SendChunks(scripted.SplitPause, "220 2.0.0 go ahead\r\n", "250-evil\r\n250 AUTH PLAIN\r\n"),
		scripted.WaitClose(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	r := send(newTr(s, transport.StartTLS), runDeadline, refEnvelope(), refMessage)
	s.Close()
	p := inClear(s)
	if oe := opError(r.err); oe == nil || oe.Op != transport.OpStartTLS {
		p = append(p, fmt.Sprintf("err = %v, want a failure at starttls", r.err))
	}
	attack(t, "starttls-injection split-segment", p)

	// Nothing between STARTTLS and the handshake; EHLO again after it; the
	// AUTH offered in clear is forgotten (here the server offers none
	// after TLS, so the client must fail rather than use the old list).
	s, err = scripted.Start(scripted.Reply("220 fake ESMTP"), scripted.Expect("EHLO"), ehlo.Reply("fake"),
		scripted.ExpectLine("STARTTLS"), scripted.ExpectNothing(100*time.Millisecond), scripted.Reply("220 2.0.0 go ahead"),
		scripted.StartTLS(), scripted.Expect("EHLO"), scripted.Caps("PIPELINING").Reply("fake"),
		scripted.Expect("QUIT"), scripted.Reply("221 bye"))
	if err != nil {
		t.Fatal(err)
	}
	r = send(newTr(s, transport.StartTLS), runDeadline, refEnvelope(), refMessage)
	werr := s.Wait(5 * time.Second)
	s.Close()
	p = nil
	if werr != nil {
		p = append(p, "script: "+werr.Error())
	}
	var ne *transport.NotSupportedError
	if !errors.As(r.err, &ne) || ne.Extension != "AUTH" {
		p = append(p, fmt.Sprintf("err = %v, want AUTH not supported (post-TLS capabilities)", r.err))
	}
	attack(t, "starttls ehlo-again-post-tls-caps", p)
}

// TestAttackSTARTTLSStripAndRefuse: STARTTLS stripped on the wire in front
// of a real server (A13), refused or answered oddly by a scripted one
// (A14), EHLO hidden (A15), AUTH stripped; with STARTTLS required there
// must be no AUTH and no MAIL in clear.
func TestAttackSTARTTLSStripAndRefuse(t *testing.T) {
	// Stripped by the proxy; the server offers AUTH in clear too.
	for _, strip := range []string{"STARTTLS", "STARTTLS+AUTH"} {
		srv := smtptest.NewUnstartedServer()
		srv.Security = transport.StartTLS
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{certs(t).serverCert}}
		srv.Users = map[string]string{testUser: testPassword}
		srv.AllowInsecureAuth = true
		srv.ErrorLog = quietLog
		srv.Start()
		p, err := faultproxy.Start(faultproxy.Config{Target: srv.Addr, StripSTARTTLS: true, StripAUTH: strip != "STARTTLS"})
		if err != nil {
			t.Fatal(err)
		}
		m := modeByName("starttls")
		r := send(newTransport(t, m, p.Addr(), false, nil), runDeadline, refEnvelope(), refMessage)
		p.Close()
		srv.Close()
		ci, _ := p.Conn(0)
		up := string(ci.Received[faultproxy.Up])
		var probs []string
		var ne *transport.NotSupportedError
		if !errors.As(r.err, &ne) || ne.Extension != "STARTTLS" {
			probs = append(probs, fmt.Sprintf("err = %v, want STARTTLS not supported", r.err))
		}
		for _, c := range []string{"AUTH", "MAIL", "STARTTLS"} {
			if hasLine(up, c) {
				probs = append(probs, c+" sent after the strip: "+up)
			}
		}
		if len(srv.Messages()) > 0 {
			probs = append(probs, "message delivered in clear")
		}
		attack(t, "strip "+strip, probs)
	}
	// AUTH stripped after TLS: the client must not send MAIL unauthenticated.
	{
		srv := newServer(t, modeByName("implicit-tls"))
		cfg := proxyConfig(t, modeByName("implicit-tls"), srv, true)
		cfg.StripAUTH = true
		p, err := faultproxy.Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		r := send(newTransport(t, modeByName("implicit-tls"), p.Addr(), true, nil), runDeadline, refEnvelope(), refMessage)
		p.Close()
		srv.Close()
		ci, _ := p.Conn(0)
		var probs []string
		var ne *transport.NotSupportedError
		if !errors.As(r.err, &ne) || !strings.HasPrefix(ne.Extension, "AUTH") {
			probs = append(probs, fmt.Sprintf("err = %v, want AUTH not supported", r.err))
		}
		if hasLine(string(ci.Received[faultproxy.Up]), "MAIL") {
			probs = append(probs, "MAIL sent without the required AUTH")
		}
		attack(t, "strip AUTH", probs)
	}
	// Refusals and odd replies to STARTTLS (EAST others/starttls/*).
	for _, rep := range []string{"454 4.7.0 TLS not available", "502 5.5.1 no", "500 5.5.2 what", "501 5.5.4 syntax",
		"421 4.3.2 closing", "354 odd", "221 2.0.0 bye", "250 2.0.0 ok", "530 5.7.0 no", "220 go ahead (then nothing)"} {
		steps := []scripted.Step{scripted.Reply("220 fake ESMTP"), scripted.Expect("EHLO"),
			scripted.Caps("STARTTLS", "AUTH PLAIN LOGIN", "PIPELINING").Reply("fake"), scripted.Expect("STARTTLS")}
		if strings.HasPrefix(rep, "220") {
			steps = append(steps, scripted.Reply("220 go ahead"), scripted.Close())
		} else {
			steps = append(steps, scripted.Reply(rep), scripted.WaitClose(5*time.Second))
		}
		s, err := scripted.Start(steps...)
		if err != nil {
			t.Fatal(err)
		}
		tr := &transport.SMTP{Addr: s.Addr, Security: transport.StartTLS, TLSConfig: &tls.Config{RootCAs: scripted.CertPool()}, LocalName: localName,
			Auth: auth.Config{Credentials: auth.Credentials{Username: testUser, Password: testPassword}}}
		r := send(tr, runDeadline, refEnvelope(), refMessage)
		s.Close()
		var probs []string
		if oe := opError(r.err); oe == nil || oe.Op != transport.OpStartTLS {
			probs = append(probs, fmt.Sprintf("err = %v, want a failure at starttls", r.err))
		}
		if errors.Is(r.err, transport.ErrTransient) && !strings.HasPrefix(rep, "4") && !strings.HasPrefix(rep, "220") && !strings.HasPrefix(rep, "2") && !strings.HasPrefix(rep, "3") {
			probs = append(probs, fmt.Sprintf("a %s refusal of required TLS classified transient", rep[:3]))
		}
		recv := s.Received()
		for _, c := range []string{"AUTH", "MAIL"} {
			if hasLine(recv, c) {
				probs = append(probs, c+" sent in clear")
			}
		}
		attack(t, "starttls-refused "+rep[:3], probs)
	}
	// EHLO hidden: no HELO fallback when TLS is required.
	for _, code := range []string{"500", "502"} {
		s, err := scripted.Start(scripted.Reply("220 old"), scripted.Expect("EHLO"), scripted.Reply(code+" 5.5.1 what"), scripted.WaitClose(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		tr := &transport.SMTP{Addr: s.Addr, Security: transport.StartTLS, LocalName: localName}
		r := send(tr, runDeadline, refEnvelope(), refMessage)
		s.Close()
		var probs []string
		if r.err == nil || hasLine(s.Received(), "HELO") || hasLine(s.Received(), "MAIL") {
			probs = append(probs, fmt.Sprintf("err %v, server got %q", r.err, s.Received()))
		}
		attack(t, "ehlo-hidden "+code, probs)
	}
	// LMTP with RequireTLS behind a stripping proxy.
	{
		srv := smtptest.NewUnstartedServer()
		srv.LMTP, srv.Security = true, transport.StartTLS
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{certs(t).serverCert}}
		srv.ErrorLog = quietLog
		srv.Start()
		p, err := faultproxy.Start(faultproxy.Config{Target: srv.Addr, StripSTARTTLS: true})
		if err != nil {
			t.Fatal(err)
		}
		tr := &transport.LMTP{Addr: p.Addr(), RequireTLS: true, TLSConfig: &tls.Config{RootCAs: certs(t).serverCA.Pool()}, LocalName: localName}
		r := send(tr, runDeadline, refEnvelope(), refMessage)
		p.Close()
		srv.Close()
		ci, _ := p.Conn(0)
		var probs []string
		if r.err == nil || hasLine(string(ci.Received[faultproxy.Up]), "MAIL") {
			probs = append(probs, fmt.Sprintf("err %v, sent %q", r.err, ci.Received[faultproxy.Up]))
		}
		attack(t, "strip lmtp-requiretls", probs)
	}
}

// TestAttackCertificates: a man in the middle presents a wrong-name, a
// self-signed, an expired and an untrusted certificate, on implicit TLS and
// after STARTTLS (A19); servers that speak only TLS 1.0 or 1.1 (A21).
func TestAttackCertificates(t *testing.T) {
	pk := certs(t)
	untrustedCA, err := faultproxy.NewCA("nobody trusts me")
	if err != nil {
		t.Fatal(err)
	}
	mk := func(f func() (tls.Certificate, error)) tls.Certificate {
		c, err := f()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	bad := []struct {
		name string
		cert tls.Certificate
	}{
		{"wrong-name", mk(func() (tls.Certificate, error) { return pk.proxyCA.Issue(faultproxy.WrongName()) })},
		{"self-signed", mk(func() (tls.Certificate, error) { return faultproxy.SelfSigned(faultproxy.Loopback()) })},
		{"expired", mk(func() (tls.Certificate, error) { return pk.proxyCA.Issue(faultproxy.Expired()) })},
		{"untrusted-ca", mk(func() (tls.Certificate, error) { return untrustedCA.Issue(faultproxy.Loopback()) })},
	}
	for _, m := range []mode{modeByName("starttls"), modeByName("implicit-tls")} { // starttls, implicit-tls
		for _, b := range bad {
			srv := newServer(t, m)
			cfg := proxyConfig(t, m, srv, true)
			cfg.TLS = faultproxy.ServerConfig(b.cert)
			p, err := faultproxy.Start(cfg)
			if err != nil {
				t.Fatal(err)
			}
			// The client trusts the proxy's CA: only the defect is wrong.
			r := send(newTransport(t, m, p.Addr(), true, nil), runDeadline, refEnvelope(), refMessage)
			p.Close()
			srv.Close()
			ci, _ := p.Conn(0)
			t.Logf("certificate %s %s: %v", m.name, b.name, r.err)
			attack(t, "certificate "+m.name+" "+b.name, tlsRefused(r, ci, len(srv.Messages())))
		}
	}
	// Old TLS versions only.
	for _, m := range []mode{modeByName("starttls"), modeByName("implicit-tls")} {
		for _, v := range []struct {
			name string
			max  uint16
		}{{"tls1.0", tls.VersionTLS10}, {"tls1.1", tls.VersionTLS11}} {
			srv := smtptest.NewUnstartedServer()
			srv.Security = m.security
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{pk.serverCert}, MinVersion: tls.VersionTLS10, MaxVersion: v.max}
			srv.Users = map[string]string{testUser: testPassword}
			srv.ErrorLog = quietLog
			srv.Start()
			p, err := faultproxy.Start(faultproxy.Config{Target: srv.Addr})
			if err != nil {
				t.Fatal(err)
			}
			r := send(newTransport(t, m, p.Addr(), false, nil), runDeadline, refEnvelope(), refMessage)
			p.Close()
			srv.Close()
			ci, _ := p.Conn(0)
			t.Logf("tls-version %s %s: %v", m.name, v.name, r.err)
			probs := tlsRefused(r, ci, len(srv.Messages()))
			attack(t, "tls-version "+m.name+" "+v.name, probs)
		}
	}
}

// tlsRefused checks a run whose TLS handshake had to fail.
func tlsRefused(r sendResult, ci faultproxy.ConnInfo, delivered int) []string {
	var p []string
	oe := opError(r.err)
	if oe == nil || oe.Op != transport.OpStartTLS {
		p = append(p, fmt.Sprintf("err = %v, want a failure at starttls", r.err))
	}
	if errors.Is(r.err, transport.ErrTransient) || errors.Is(r.err, transport.ErrPermanent) {
		p = append(p, fmt.Sprintf("a TLS failure must match no retry class: %v", r.err))
	}
	if delivered > 0 {
		p = append(p, "message delivered")
	}
	if ci.TLS && len(ci.Received[faultproxy.Up]) > 0 {
		// The proxy terminated TLS: plaintext it received after the
		// handshake would be what the client sent to the impostor.
		up := string(ci.Received[faultproxy.Up])
		if i := strings.Index(up, "STARTTLS\r\n"); i >= 0 {
			up = up[i+10:]
		}
		if up != "" {
			p = append(p, fmt.Sprintf("client sent %q to an unverified server", up))
		}
	}
	for _, rr := range r.res.Rcpts {
		if rr.Outcome == transport.Accepted {
			p = append(p, "recipient accepted")
		}
	}
	return p
}
