package auth_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/mailwire/mailwire/auth"
	"github.com/xdg-go/scram"
)

func TestMalformedCredentials(t *testing.T) {
	builtins := map[string]auth.NewFunc{
		"PLAIN": auth.Plain, "LOGIN": auth.Login, "CRAM-MD5": auth.CRAMMD5,
		"XOAUTH2": auth.XOAUTH2, "OAUTHBEARER": auth.OAuthBearer, "EXTERNAL": auth.External,
		"ANONYMOUS": auth.Anonymous, "SCRAM-SHA-1": auth.SCRAMSHA1,
		"SCRAM-SHA-256": auth.SCRAMSHA256, "SCRAM-SHA-256-PLUS": auth.SCRAMSHA256Plus,
	}
	info := auth.ServerInfo{Host: "h", TLS: tlsState(), ClientCert: true, Mechanisms: auth.Mechanisms()}
	for _, bad := range []string{"\r", "\n", "\x00"} {
		for field, set := range map[string]func(*auth.Credentials, string){
			"authorization identity": func(c *auth.Credentials, s string) { c.Identity = s },
			"username":               func(c *auth.Credentials, s string) { c.Username = s },
			"password":               func(c *auth.Credentials, s string) { c.Password = s },
		} {
			value := "se" + bad + "cret-" + field
			c := auth.Credentials{Identity: "alice", Username: "alice", Password: "pw", Token: staticToken("tok")}
			set(&c, value)
			check := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, auth.ErrMalformedCredentials) {
					t.Errorf("%s with %q in %s: err = %v, want ErrMalformedCredentials", what, bad, field, err)
					return
				}
				if !strings.Contains(err.Error(), field) || strings.Contains(err.Error(), value) {
					t.Errorf("%s: err = %q, want the field named and the value absent", what, err)
				}
			}
			check("Validate", c.Validate())
			_, err := auth.Config{Credentials: c}.Start(context.Background(), info)
			check("Config.Start", err)
			for name, f := range builtins {
				_, err := start(f, c, info)
				check(name, err)
			}
		}
	}
	// Tokens are checked when fetched.
	for _, tok := range []string{"", "to\nken", "to\x01ken", "to\x7fken"} {
		for _, f := range []auth.NewFunc{auth.XOAUTH2, auth.OAuthBearer} {
			_, err := start(f, auth.Credentials{Username: "u", Token: staticToken(tok)}, info)
			if !errors.Is(err, auth.ErrMalformedCredentials) {
				t.Errorf("token %q: err = %v, want ErrMalformedCredentials", tok, err)
			}
		}
	}
}

// Test secrets: none of these, nor their base64 or hex forms, may appear in
// anything printed or returned as an error.
const (
	testPassword = "Pa55-w0rd-7f3c9e"
	testToken    = "ya29.t0ken-8d41b2"
)

// secretForms returns the strings that betray s: s itself, its hex, and the
// middle of its base64 encoding at each of the three alignments it can
// have inside a longer base64 payload.
func secretForms(s string) []string {
	forms := []string{s, hex.EncodeToString([]byte(s))}
	for pad := 0; pad < 3; pad++ {
		b := append(make([]byte, pad), s...)
		enc := base64.StdEncoding.EncodeToString(b)
		from := (pad + 2) / 3 * 4 // first group holding only secret bytes
		to := len(b) / 3 * 4      // last complete group
		forms = append(forms, enc[from:to])
	}
	return forms
}

func assertNoSecret(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range []string{testPassword, testToken} {
		for _, f := range secretForms(s) {
			if strings.Contains(out, f) {
				t.Errorf("%s leaks a secret (%q): %s", what, f, out)
			}
		}
	}
}

func TestSecretForms(t *testing.T) {
	// The detector finds the secret inside real payloads.
	payload := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00" + testPassword))
	found := false
	for _, f := range secretForms(testPassword) {
		found = found || strings.Contains(payload, f)
	}
	if !found {
		t.Fatal("secretForms misses the password in a PLAIN payload")
	}
}

func TestNoSecretsPrinted(t *testing.T) {
	c := auth.Credentials{Identity: "boss", Username: "alice", Password: testPassword, Token: staticToken(testToken), Host: "smtp.example.org"}
	cfg := auth.Config{Credentials: c, Mechanisms: []string{"PLAIN"}, AllowInsecure: true}
	type wrapper struct {
		Auth  auth.Config
		Creds auth.Credentials
		Ptr   *auth.Config
	}
	values := []any{c, &c, cfg, &cfg, wrapper{cfg, c, &cfg}, []auth.Credentials{c}, map[string]auth.Config{"x": cfg}}
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
			out := fmt.Sprintf(verb, v)
			assertNoSecret(t, fmt.Sprintf("Sprintf(%s, %T)", verb, v), out)
			if verb == "%+v" && !strings.Contains(out, "[redacted]") {
				t.Errorf("Sprintf(%s, %T) = %s, want [redacted]", verb, v, out)
			}
		}
	}
	assertNoSecret(t, "String", c.String()+cfg.String()+c.GoString()+cfg.GoString())

	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		slog.New(h).Info("auth", "creds", c, "config", cfg, "ptr", &cfg)
	}
	assertNoSecret(t, "slog", buf.String())
	if !strings.Contains(buf.String(), "[redacted]") {
		t.Errorf("slog output has no [redacted]: %s", buf.String())
	}
}

func TestNoSecretsInErrors(t *testing.T) {
	ctx := context.Background()
	pw := auth.Credentials{Username: "alice", Password: testPassword, Token: staticToken(testToken), Host: "smtp.example.org"}
	tlsOK := auth.ServerInfo{Host: "smtp.example.org", TLS: tlsState()}
	with := func(info auth.ServerInfo, mechs ...string) auth.ServerInfo { info.Mechanisms = mechs; return info }

	var errs []error
	add := func(err error) {
		if err == nil {
			t.Errorf("failure path %d returned no error", len(errs))
		}
		errs = append(errs, err)
	}
	startErr := func(cfg auth.Config, info auth.ServerInfo) error { _, err := cfg.Start(ctx, info); return err }

	// Negotiation failures.
	add(startErr(auth.Config{Credentials: pw}, with(auth.ServerInfo{Host: "smtp.example.org"}, "PLAIN")))
	add(startErr(auth.Config{Credentials: pw}, with(auth.ServerInfo{Host: "evil.example", TLS: tlsState()}, "PLAIN")))
	add(startErr(auth.Config{Credentials: pw}, tlsOK))
	add(startErr(auth.Config{Credentials: pw}, with(tlsOK, "GSSAPI", "EXTERNAL")))
	add(startErr(auth.Config{Credentials: pw, Mechanisms: []string{"X-NOPE"}}, with(tlsOK, "PLAIN")))
	_, err := auth.New("nope", pw)
	add(err)
	// Malformed credentials and tokens.
	bad := pw
	bad.Password = testPassword + "\r\n"
	add(startErr(auth.Config{Credentials: bad}, with(tlsOK, "PLAIN")))
	bad = pw
	bad.Password = testPassword + "\u0007" // refused by SASLprep
	add(startErr(auth.Config{Credentials: bad}, with(tlsOK, "SCRAM-SHA-256")))
	for _, tok := range []string{testToken + "\n", testToken + "\x01"} {
		bad = pw
		bad.Token = staticToken(tok)
		add(startErr(auth.Config{Credentials: bad}, with(tlsOK, "XOAUTH2")))
		add(startErr(auth.Config{Credentials: bad}, with(tlsOK, "OAUTHBEARER")))
	}
	bad = pw
	bad.Token = func(context.Context) (string, error) { return "", errors.New("refresh failed") }
	add(startErr(auth.Config{Credentials: bad}, with(tlsOK, "XOAUTH2")))
	// Constructors called without what they need.
	add(func() error { _, err := start(auth.External, pw, tlsOK); return err }())
	add(func() error {
		_, err := start(auth.SCRAMSHA256Plus, pw, auth.ServerInfo{Host: "smtp.example.org"})
		return err
	}())

	// Exchanges the server or the client breaks off.
	next := func(f auth.NewFunc, challenges ...string) error {
		c, err := start(f, pw, with(tlsOK, "SCRAM-SHA-256"))
		if err != nil {
			return err
		}
		c.Start()
		for _, ch := range challenges {
			if _, err = c.Next([]byte(ch)); err != nil {
				return err
			}
		}
		if f, ok := c.(auth.Finisher); ok {
			return f.Finish()
		}
		return nil
	}
	add(next(auth.Plain, "x"))
	add(next(auth.Login, "Username:", "Password:", "Again:"))
	add(next(auth.CRAMMD5, ""))
	add(next(auth.CRAMMD5, "<1@x>", "<2@x>"))
	add(next(auth.XOAUTH2, "{}", "{}"))
	add(next(auth.OAuthBearer, "{}", "{}"))
	add(next(auth.SCRAMSHA256, "garbage"))
	add(next(auth.SCRAMSHA256, "e=other-error"))

	// SCRAM against a server: forged signature, missing signature.
	srv := newSCRAMServer(t, scram.SHA256, "alice", testPassword)
	c, _ := start(auth.SCRAMSHA256, pw, tlsOK)
	_, err = exchange(c, &scramServer{conv: srv.NewConversation(), forge: func(string) string { return "v=AAAA" }})
	add(err)
	c, _ = start(auth.SCRAMSHA256, pw, tlsOK)
	_, ir, _ := c.Start()
	conv := srv.NewConversation()
	s1, _ := conv.Step(string(ir))
	c.Next([]byte(s1))
	add(c.(auth.Finisher).Finish())

	for i, err := range errs {
		if err == nil {
			continue
		}
		assertNoSecret(t, fmt.Sprintf("error %d", i), err.Error()+fmt.Sprintf(" %+v %#v", err, err))
	}
}
