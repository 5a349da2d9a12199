package reliability_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/internal/scripted"
	"github.com/mailwire/mailwire/transport"
)

// Credentials never leave the AUTH exchange (principle 7, A22, A23, A27):
// not to a cleartext socket, not to a server they are not bound to, not to
// the debug transcript, errors or results.

const testToken = "ya29.T0k3n-S3cret-0123456789abcdef"

// secretForms returns substrings that betray secret: itself, and its
// base64 encodings at the three alignments (the middle part that only the
// secret's bytes determine).
func secretForms(secret string) []string {
	forms := []string{secret}
	for k := 0; k < 3; k++ {
		enc := base64.StdEncoding.EncodeToString(append(bytes.Repeat([]byte{0}, k), secret...))
		if len(enc) > 12 {
			forms = append(forms, enc[4:len(enc)-4])
		}
	}
	return forms
}

var base64Token = regexp.MustCompile(`[A-Za-z0-9+/]{8,}={0,2}`)

// leaks returns where text shows one of the secrets, directly, in base64 at
// any alignment, or inside any base64 token it contains.
func leaks(text string, secrets ...string) []string {
	var out []string
	for _, s := range secrets {
		for _, f := range secretForms(s) {
			if strings.Contains(text, f) {
				out = append(out, fmt.Sprintf("contains %q (a form of a secret)", f))
			}
		}
		for _, tok := range base64Token.FindAllString(text, -1) {
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
				if b, err := enc.DecodeString(tok); err == nil && bytes.Contains(b, []byte(s)) {
					out = append(out, fmt.Sprintf("base64 token %q decodes to a secret", tok))
				}
			}
		}
	}
	return out
}

// everything renders a run's error and result every way a caller might log
// them.
func everything(r sendResult) string {
	var b strings.Builder
	if r.err != nil {
		fmt.Fprintf(&b, "%v\n%+v\n%#v\n%s\n", r.err, r.err, r.err, r.err.Error())
		for e := r.err; e != nil; e = errors.Unwrap(e) {
			fmt.Fprintf(&b, "%v\n", e)
		}
	}
	if r.res != nil {
		fmt.Fprintf(&b, "%+v\n%#v\n", r.res, r.res)
		for _, rr := range r.res.Rcpts {
			if rr.Err != nil {
				fmt.Fprintf(&b, "%v %+v\n", rr.Err, rr.Err)
			}
		}
	}
	return b.String()
}

func credsConfig(mech string) auth.Config {
	return auth.Config{Credentials: auth.Credentials{Username: testUser, Password: testPassword,
		Token: func(context.Context) (string, error) { return testToken, nil }}, Mechanisms: []string{mech}}
}

// TestSecretsNeverLeak runs AUTH exchanges that succeed, fail, are cut and
// stall, with the debug transcript on, and looks for the password, the
// token and their encodings in the transcript, the errors and the results.
func TestSecretsNeverLeak(t *testing.T) {
	caps := scripted.Caps("PIPELINING", "8BITMIME", "AUTH PLAIN LOGIN XOAUTH2")
	type scenario struct {
		name   string
		mech   string
		answer func(scripted.Command) scripted.Response
	}
	var scenarios []scenario
	for _, mech := range []string{"PLAIN", "LOGIN", "XOAUTH2"} {
		scenarios = append(scenarios,
			scenario{mech + " accepted", mech, nil},
			scenario{mech + " refused", mech, func(c scripted.Command) scripted.Response {
				if c.Verb == "AUTH" && mech != "LOGIN" || c.Verb == "AUTH-RESPONSE" && c.N == 2 {
					return scripted.Response{Text: scripted.Lines("535 5.7.8 authentication failed")}
				}
				return scripted.Response{}
			}},
			scenario{mech + " cut", mech, func(c scripted.Command) scripted.Response {
				if c.Verb == "AUTH" || c.Verb == "AUTH-RESPONSE" {
					return scripted.Response{Close: true}
				}
				return scripted.Response{}
			}},
			scenario{mech + " garbage", mech, func(c scripted.Command) scripted.Response {
				if c.Verb == "AUTH" || c.Verb == "AUTH-RESPONSE" {
					return scripted.Response{Text: "hello\r\n"}
				}
				return scripted.Response{}
			}},
		)
	}
	for _, sc := range scenarios {
		for _, implicit := range []bool{false, true} {
			opts := scripted.Options{ImplicitTLS: implicit}
			cfg := scripted.AutoConfig{Caps: caps, Answer: sc.answer}
			sec := transport.ImplicitTLS
			if !implicit {
				cfg.Caps, cfg.CapsTLS = caps.With("STARTTLS"), caps
				sec = transport.StartTLS
			}
			s, err := scripted.StartWith(opts, scripted.Auto(cfg))
			if err != nil {
				t.Fatal(err)
			}
			var transcript bytes.Buffer
			tr := &transport.SMTP{Addr: s.Addr, Security: sec, TLSConfig: &tls.Config{RootCAs: scripted.CertPool()},
				LocalName: localName, Auth: credsConfig(sc.mech), Debug: &lockedBuffer{b: &transcript}}
			r := send(tr, runDeadline, refEnvelope(), refMessage)
			s.Close()
			var p []string
			for _, l := range leaks(transcript.String(), testPassword, testToken) {
				p = append(p, "transcript "+l)
			}
			for _, l := range leaks(everything(r), testPassword, testToken) {
				p = append(p, "error/result "+l)
			}
			if sc.answer == nil && r.err != nil {
				p = append(p, fmt.Sprintf("the exchange should succeed: %v", r.err))
			}
			if sc.answer == nil && !strings.Contains(transcript.String(), "[redacted]") {
				p = append(p, "transcript shows no redaction mark")
			}
			name := fmt.Sprintf("secrets %s implicit=%v", sc.name, implicit)
			attack(t, name, p)
		}
	}
}

// TestSecretsNotSentInClear: a server in clear that offers AUTH (A22),
// STARTTLS offered opportunistically but stripped, and credentials bound
// to another host (A23): nothing of the credentials may be written.
func TestSecretsNotSentInClear(t *testing.T) {
	caps := scripted.Caps("PIPELINING", "8BITMIME", "AUTH PLAIN LOGIN XOAUTH2 CRAM-MD5")
	for _, mech := range []string{"PLAIN", "LOGIN", "XOAUTH2", "CRAM-MD5"} {
		for _, sec := range []transport.Security{transport.Plaintext, transport.StartTLSOpportunistic} {
			s, err := scripted.StartWith(scripted.Options{}, scripted.Auto(scripted.AutoConfig{Caps: caps}))
			if err != nil {
				t.Fatal(err)
			}
			var transcript bytes.Buffer
			tr := &transport.SMTP{Addr: s.Addr, Security: sec, LocalName: localName, Auth: credsConfig(mech), Debug: &lockedBuffer{b: &transcript}}
			r := send(tr, runDeadline, refEnvelope(), refMessage)
			s.Close()
			var p []string
			if !errors.Is(r.err, transport.ErrInsecureAuth) {
				p = append(p, fmt.Sprintf("err = %v, want ErrInsecureAuth", r.err))
			}
			if oe := opError(r.err); oe == nil || oe.Op != transport.OpAuth {
				p = append(p, fmt.Sprintf("err = %v, want step auth", r.err))
			}
			recv := s.Received()
			if hasLine(recv, "AUTH") || hasLine(recv, "MAIL") {
				p = append(p, fmt.Sprintf("sent in clear: %q", recv))
			}
			for _, l := range leaks(recv+transcript.String()+everything(r), testPassword, testToken) {
				p = append(p, l)
			}
			attack(t, fmt.Sprintf("cleartext-auth %s %v", mech, sec), p)
		}
	}
	// Credentials bound to another host, over TLS.
	s, err := scripted.StartWith(scripted.Options{ImplicitTLS: true}, scripted.Auto(scripted.AutoConfig{Caps: caps}))
	if err != nil {
		t.Fatal(err)
	}
	c := credsConfig("PLAIN")
	c.Host = "mail.example.org"
	tr := &transport.SMTP{Addr: s.Addr, Security: transport.ImplicitTLS, TLSConfig: &tls.Config{RootCAs: scripted.CertPool()}, LocalName: localName, Auth: c}
	r := send(tr, runDeadline, refEnvelope(), refMessage)
	s.Close()
	var p []string
	if !errors.Is(r.err, auth.ErrHostMismatch) {
		p = append(p, fmt.Sprintf("err = %v, want ErrHostMismatch", r.err))
	}
	if hasLine(s.Received(), "AUTH") || hasLine(s.Received(), "MAIL") {
		p = append(p, fmt.Sprintf("sent to the wrong host: %q", s.Received()))
	}
	attack(t, "credentials-bound-to-host", p)
}
