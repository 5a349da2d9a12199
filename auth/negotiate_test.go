package auth_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mailwire/mailwire/auth"
)

func TestNegotiate(t *testing.T) {
	pw := auth.Credentials{Username: "alice", Password: "pw"}
	tok := auth.Credentials{Username: "alice", Token: staticToken("tok")}
	both := auth.Credentials{Username: "alice", Password: "pw", Token: staticToken("tok")}
	authz := auth.Credentials{Identity: "boss", Username: "alice", Password: "pw"}
	bound := auth.Credentials{Username: "alice", Password: "pw", Host: "SMTP.Example.ORG."}

	tlsCB := auth.ServerInfo{Host: "smtp.example.org", TLS: tlsState()}
	tlsNoCB := auth.ServerInfo{Host: "smtp.example.org", TLS: &tlsStateNoUnique}
	tlsCert := auth.ServerInfo{Host: "smtp.example.org", TLS: tlsState(), ClientCert: true}
	unix := auth.ServerInfo{Host: "localhost", Unix: true}
	plain := auth.ServerInfo{Host: "127.0.0.1"}

	with := func(info auth.ServerInfo, mechs string) auth.ServerInfo {
		info.Mechanisms = strings.Fields(mechs)
		return info
	}
	for _, tc := range []struct {
		name    string
		cfg     auth.Config
		info    auth.ServerInfo
		want    string // chosen mechanism, or ""
		wantErr error
	}{
		{"strongest, not first listed", auth.Config{Credentials: pw}, with(tlsCB, "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256"), "SCRAM-SHA-256", nil},
		{"PLUS with binding", auth.Config{Credentials: pw}, with(tlsCB, "PLAIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS"), "SCRAM-SHA-256-PLUS", nil},
		{"PLUS without binding data", auth.Config{Credentials: pw}, with(tlsNoCB, "SCRAM-SHA-256-PLUS SCRAM-SHA-256"), "SCRAM-SHA-256", nil},
		{"PLUS on unix", auth.Config{Credentials: pw}, with(unix, "SCRAM-SHA-256-PLUS PLAIN"), "PLAIN", nil},
		{"SHA-1 last SCRAM", auth.Config{Credentials: pw}, with(tlsCB, "PLAIN SCRAM-SHA-1"), "SCRAM-SHA-1", nil},
		{"PLAIN over CRAM-MD5 on TLS", auth.Config{Credentials: pw}, with(tlsCB, "CRAM-MD5 PLAIN"), "PLAIN", nil},
		{"PLAIN over LOGIN", auth.Config{Credentials: pw}, with(tlsCB, "LOGIN PLAIN"), "PLAIN", nil},
		{"LOGIN only (Office 365)", auth.Config{Credentials: pw}, with(tlsCB, "LOGIN XOAUTH2"), "LOGIN", nil},
		{"CRAM-MD5 only", auth.Config{Credentials: pw}, with(tlsCB, "CRAM-MD5"), "CRAM-MD5", nil},
		{"lower-case offer", auth.Config{Credentials: pw}, with(tlsCB, "plain"), "PLAIN", nil},
		{"unix is not insecure", auth.Config{Credentials: pw}, with(unix, "PLAIN"), "PLAIN", nil},

		{"insecure refused", auth.Config{Credentials: pw}, with(plain, "PLAIN LOGIN"), "", auth.ErrInsecure},
		{"insecure refused for SCRAM", auth.Config{Credentials: pw}, with(plain, "SCRAM-SHA-256"), "", auth.ErrInsecure},
		{"insecure refused for CRAM-MD5", auth.Config{Credentials: pw}, with(plain, "CRAM-MD5"), "", auth.ErrInsecure},
		{"insecure refused for tokens", auth.Config{Credentials: tok}, with(plain, "XOAUTH2"), "", auth.ErrInsecure},
		{"insecure allowed prefers CRAM-MD5", auth.Config{Credentials: pw, AllowInsecure: true}, with(plain, "PLAIN LOGIN CRAM-MD5"), "CRAM-MD5", nil},
		{"insecure allowed, SCRAM first", auth.Config{Credentials: pw, AllowInsecure: true}, with(plain, "CRAM-MD5 SCRAM-SHA-256"), "SCRAM-SHA-256", nil},
		{"insecure allowed, PLAIN", auth.Config{Credentials: pw, AllowInsecure: true}, with(plain, "PLAIN"), "PLAIN", nil},
		{"ANONYMOUS needs no TLS", auth.Config{Mechanisms: []string{"ANONYMOUS"}}, with(plain, "PLAIN ANONYMOUS"), "ANONYMOUS", nil},
		{"no fallback to ANONYMOUS", auth.Config{Credentials: pw, Mechanisms: []string{"PLAIN", "ANONYMOUS"}}, with(plain, "PLAIN ANONYMOUS"), "", auth.ErrInsecure},
		{"ANONYMOUS not by default", auth.Config{Credentials: pw}, with(tlsCB, "ANONYMOUS"), "", auth.ErrNoCommonMechanism},

		{"token: OAUTHBEARER first", auth.Config{Credentials: tok}, with(tlsCB, "PLAIN XOAUTH2 OAUTHBEARER"), "OAUTHBEARER", nil},
		{"token: XOAUTH2 before PLAIN", auth.Config{Credentials: both}, with(tlsCB, "PLAIN LOGIN XOAUTH2"), "XOAUTH2", nil},
		{"token: SCRAM before tokens", auth.Config{Credentials: both}, with(tlsCB, "XOAUTH2 SCRAM-SHA-256"), "SCRAM-SHA-256", nil},
		{"no token: XOAUTH2 skipped", auth.Config{Credentials: pw}, with(tlsCB, "XOAUTH2 PLAIN"), "PLAIN", nil},
		{"no token, only XOAUTH2", auth.Config{Credentials: pw}, with(tlsCB, "XOAUTH2"), "", auth.ErrNoCommonMechanism},
		{"no password, only PLAIN", auth.Config{Credentials: tok}, with(tlsCB, "PLAIN LOGIN"), "", auth.ErrNoCommonMechanism},

		{"EXTERNAL not by default", auth.Config{Credentials: pw}, with(tlsCert, "EXTERNAL PLAIN"), "PLAIN", nil},
		{"EXTERNAL by name", auth.Config{Credentials: pw, Mechanisms: []string{"EXTERNAL", "PLAIN"}}, with(tlsCert, "PLAIN EXTERNAL"), "EXTERNAL", nil},
		{"EXTERNAL without cert", auth.Config{Credentials: pw, Mechanisms: []string{"EXTERNAL", "PLAIN"}}, with(tlsCB, "PLAIN EXTERNAL"), "PLAIN", nil},

		{"caller order wins", auth.Config{Credentials: pw, Mechanisms: []string{"login", "SCRAM-SHA-256"}}, with(tlsCB, "SCRAM-SHA-256 LOGIN"), "LOGIN", nil},
		{"empty list allows none", auth.Config{Credentials: pw, Mechanisms: []string{}}, with(tlsCB, "PLAIN"), "", auth.ErrNoCommonMechanism},
		{"unknown allowed name", auth.Config{Credentials: pw, Mechanisms: []string{"X-NOPE"}}, with(tlsCB, "PLAIN"), "", auth.ErrUnknownMechanism},
		{"authzid skips LOGIN", auth.Config{Credentials: authz}, with(tlsCB, "LOGIN PLAIN"), "PLAIN", nil},
		{"authzid, LOGIN only", auth.Config{Credentials: authz}, with(tlsCB, "LOGIN CRAM-MD5"), "", auth.ErrNoCommonMechanism},

		{"AUTH not offered", auth.Config{Credentials: pw}, with(tlsCB, ""), "", auth.ErrNotOffered},
		{"host bound, same host", auth.Config{Credentials: bound}, with(tlsCB, "PLAIN"), "PLAIN", nil},
		{"host bound, other host", auth.Config{Credentials: bound}, with(auth.ServerInfo{Host: "evil.example", TLS: tlsState()}, "PLAIN"), "", auth.ErrHostMismatch},
		{"host bound, no host", auth.Config{Credentials: bound}, with(auth.ServerInfo{TLS: tlsState()}, "PLAIN"), "", auth.ErrHostMismatch},
		{"malformed", auth.Config{Credentials: auth.Credentials{Username: "a\r\nRSET", Password: "pw"}}, with(tlsCB, "PLAIN"), "", auth.ErrMalformedCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.cfg.Start(context.Background(), tc.info)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Start() err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Start() err = %v, want %s", err, tc.want)
			}
			if got, _, _ := c.Start(); got != tc.want {
				t.Errorf("chose %s, want %s", got, tc.want)
			}
		})
	}
}

func TestNoCommonMechanismError(t *testing.T) {
	cfg := auth.Config{Credentials: auth.Credentials{Username: "alice", Password: "pw"}}
	_, err := cfg.Start(context.Background(), auth.ServerInfo{TLS: tlsState(), Mechanisms: []string{"XOAUTH2", "GSSAPI"}})
	var ne *auth.NoCommonMechanismError
	if !errors.As(err, &ne) {
		t.Fatalf("err = %v, want *NoCommonMechanismError", err)
	}
	want := "auth: no common mechanism: server offers XOAUTH2 GSSAPI; allowed " +
		strings.Join(auth.DefaultPreference(), " ") + "; XOAUTH2: no token source"
	if err.Error() != want {
		t.Errorf("err = %q\nwant  %q", err, want)
	}
}

func TestNoCommonMechanismErrorBoundsServerList(t *testing.T) {
	// A hostile server's 3 KB junk list: the error message quotes a
	// bounded part of it, the Offered field keeps all of it.
	var offered []string
	for i := 0; len(strings.Join(offered, " ")) < 3000; i++ {
		offered = append(offered, fmt.Sprintf("JUNK%d-%s", i, strings.Repeat("X", 60)))
	}
	offered = append(offered, "GSSAPI")
	cfg := auth.Config{Credentials: auth.Credentials{Username: "alice", Password: "pw"}, Mechanisms: []string{"PLAIN"}}
	_, err := cfg.Start(context.Background(), auth.ServerInfo{TLS: tlsState(), Mechanisms: offered})
	var ne *auth.NoCommonMechanismError
	if !errors.As(err, &ne) {
		t.Fatalf("err = %v, want *NoCommonMechanismError", err)
	}
	if !slices.Equal(ne.Offered, offered) {
		t.Errorf("Offered has %d names, want all %d", len(ne.Offered), len(offered))
	}
	msg := err.Error()
	var quoted []string
	for i := range 16 {
		quoted = append(quoted, offered[i][:40]+"…")
	}
	want := "auth: no common mechanism: server offers " + strings.Join(quoted, " ") +
		fmt.Sprintf(" … and %d more; allowed PLAIN", len(offered)-16)
	if msg != want {
		t.Errorf("err = %q\nwant  %q", msg, want)
	}
	if len(msg) > 1000 {
		t.Errorf("message is %d bytes", len(msg))
	}
	if strings.Contains(msg, "GSSAPI") || strings.Contains(msg, strings.Repeat("X", 41)) {
		t.Errorf("message quotes too much: %q", msg)
	}

	// Exactly 16 names: all shown, no "more".
	ne2 := &auth.NoCommonMechanismError{Offered: offered[:16], Allowed: []string{"PLAIN"}}
	if s := ne2.Error(); strings.Contains(s, "more") || !strings.Contains(s, offered[15][:40]+"…; allowed") {
		t.Errorf("16 names: %q", s)
	}
}

func TestNoCommonMechanismErrorEscapesServerNames(t *testing.T) {
	e := &auth.NoCommonMechanismError{
		Offered: []string{"PLAIN", "\x1b[31mRED", "caf\u00e9", "\x00" + strings.Repeat("\x07", 100)},
		Allowed: []string{"SCRAM-SHA-256"},
	}
	msg := e.Error()
	// The last name is cut to fit 40 bytes with its closing quote, never
	// inside an escape sequence.
	want := `auth: no common mechanism: server offers PLAIN "\x1b[31mRED" "caf\u00e9" "\x00` + strings.Repeat(`\a`, 17) + `…; allowed SCRAM-SHA-256`
	if msg != want {
		t.Errorf("err = %q\nwant  %q", msg, want)
	}
	for i := 0; i < len(msg); i++ {
		if msg[i] < 0x20 || msg[i] == 0x7f {
			t.Fatalf("message holds control byte %#x: %q", msg[i], msg)
		}
	}
}

func TestNew(t *testing.T) {
	a, err := auth.New("cram-md5", auth.Credentials{Username: "tim", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	// Same checks as a Config.
	if _, err := a.Start(context.Background(), auth.ServerInfo{Mechanisms: []string{"CRAM-MD5"}}); !errors.Is(err, auth.ErrInsecure) {
		t.Errorf("insecure: err = %v, want ErrInsecure", err)
	}
	if _, err := a.Start(context.Background(), auth.ServerInfo{TLS: tlsState(), Mechanisms: []string{"PLAIN"}}); !errors.Is(err, auth.ErrNoCommonMechanism) {
		t.Errorf("not offered: err = %v, want ErrNoCommonMechanism", err)
	}
	c, err := a.Start(context.Background(), auth.ServerInfo{TLS: tlsState(), Mechanisms: []string{"PLAIN", "CRAM-MD5"}})
	if err != nil {
		t.Fatal(err)
	}
	if mech, _, _ := c.Start(); mech != "CRAM-MD5" {
		t.Errorf("chose %s, want CRAM-MD5", mech)
	}
}

func TestStartContext(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("stopped")
	cancel(stop)
	cfg := auth.Config{Credentials: auth.Credentials{Username: "a", Password: "b"}}
	if _, err := cfg.Start(ctx, auth.ServerInfo{TLS: tlsState(), Mechanisms: []string{"PLAIN"}}); !errors.Is(err, stop) {
		t.Errorf("canceled: err = %v, want the cause", err)
	}

	// The token source gets Start's context and is called once.
	type key struct{}
	calls := 0
	cfg = auth.Config{Credentials: auth.Credentials{Username: "a", Token: func(ctx context.Context) (string, error) {
		calls++
		if ctx.Value(key{}) != "v" {
			return "", errors.New("wrong context")
		}
		return "tok", nil
	}}}
	ctx = context.WithValue(context.Background(), key{}, "v")
	if _, err := cfg.Start(ctx, auth.ServerInfo{TLS: tlsState(), Mechanisms: []string{"XOAUTH2"}}); err != nil || calls != 1 {
		t.Errorf("Start() err = %v, token calls %d", err, calls)
	}
}
