package interop_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/interoptest"
	"github.com/mailwire/mailwire/transport"
)

// authServer is a server that takes AUTH after TLS.
type authServer struct {
	name string
	addr string
	sec  transport.Security
}

func postfixAuthServers(cfg *interoptest.Config) []authServer {
	return []authServer{
		{"submission", cfg.PostfixSubmission, transport.StartTLS},
		{"smtps", cfg.PostfixSMTPS, transport.ImplicitTLS},
	}
}

func dovecotAuthServer(t *testing.T, cfg *interoptest.Config) authServer {
	t.Helper()
	cfg.Require(t, "DOVECOT_SUBMISSION")
	return authServer{"dovecot-submission", cfg.DovecotSubmission, transport.StartTLS}
}

func (s authServer) transport(t *testing.T, cfg *interoptest.Config, a auth.Authenticator, debug *syncBuffer) *transport.SMTP {
	t.Helper()
	tr := &transport.SMTP{Addr: s.addr, Security: s.sec, TLSConfig: cfg.TLSConfig(), LocalName: ehloName, Auth: a}
	if debug != nil {
		tr.Debug = debug
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// offered returns the mechanisms s advertises after TLS.
func (s authServer) offered(t *testing.T, cfg *interoptest.Config) []string {
	t.Helper()
	c, err := s.transport(t, cfg, nil, nil).Dial(testCtx(t, 30*time.Second))
	if err != nil {
		t.Fatalf("%s: Dial: %v", s.name, err)
	}
	defer c.Close()
	if c.TLSConnectionState() == nil {
		t.Fatalf("%s: no TLS before AUTH", s.name)
	}
	return c.AuthMechanisms()
}

func aliceCreds(t *testing.T, cfg *interoptest.Config, addr string) auth.Credentials {
	return auth.Credentials{Username: cfg.Alice.Name, Password: cfg.Alice.Password, Host: hostOf(t, addr)}
}

// authAndSend authenticates with a, checks the mechanism used, and sends one
// message to alice over the session; it returns the transcript.
func authAndSend(t *testing.T, cfg *interoptest.Config, s authServer, a auth.Authenticator, wantMech string) *syncBuffer {
	t.Helper()
	var debug syncBuffer
	tr := s.transport(t, cfg, a, &debug)
	ctx := testCtx(t, time.Minute)
	c, err := tr.Dial(ctx)
	if err != nil {
		t.Fatalf("%s: Dial with AUTH %s: %v", s.name, wantMech, err)
	}
	defer c.Close()
	if got := c.AuthMechanism(); got != wantMech {
		t.Errorf("%s: AuthMechanism() = %q, want %q", s.name, got, wantMech)
	}
	id := marker(t)
	alice := cfg.Alice.Address(cfg.Domain)
	msg := message(id, alice, "AUTH "+wantMech, "authenticated with "+wantMech+"\r\n.dot\r\n")
	res, err := c.Send(ctx, envelope.New(sender, alice), bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("%s: Send after AUTH %s: %v", s.name, wantMech, err)
	}
	checkResult(t, res, addrsOf(alice), []wantRcpt{{outcome: transport.Accepted, code: 250}})
	c.Close()
	expectDelivered(t, cfg.VirtualMaildir("alice"), id, msg)
	if !strings.Contains(debug.String(), "C: AUTH "+wantMech) {
		t.Errorf("transcript lacks the AUTH %s line:\n%s", wantMech, debug.String())
	}
	assertNoSecret(t, cfg.Alice.Name, cfg.Alice.Password, map[string]string{
		"transcript":       debug.String(),
		"authenticator %v": fmt.Sprintf("%v %+v %#v", a, a, a),
	})
	return &debug
}

// TestAuthPostfixMechanisms authenticates with PLAIN, LOGIN and CRAM-MD5
// (and SCRAM when Postfix offers it) through Postfix submission (STARTTLS
// required) and implicit TLS, and sends a message each time.
func TestAuthPostfixMechanisms(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	for _, s := range postfixAuthServers(cfg) {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			offered := s.offered(t, cfg)
			for _, mech := range []string{"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"} {
				t.Run(mech, func(t *testing.T) {
					t.Parallel()
					if !slices.Contains(offered, mech) {
						if strings.HasPrefix(mech, "SCRAM") {
							t.Skipf("%s does not offer %s (offers %v)", s.name, mech, offered)
						}
						t.Fatalf("%s does not offer %s (offers %v)", s.name, mech, offered)
					}
					a, err := auth.New(mech, aliceCreds(t, cfg, s.addr))
					if err != nil {
						t.Fatal(err)
					}
					authAndSend(t, cfg, s, a, mech)
				})
			}
		})
	}
}

// TestAuthDovecotSCRAM authenticates with SCRAM-SHA-1 and SCRAM-SHA-256
// (and SCRAM-SHA-256-PLUS if offered) against Dovecot's submission service,
// which relays the message to Postfix.
func TestAuthDovecotSCRAM(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	s := dovecotAuthServer(t, cfg)
	offered := s.offered(t, cfg)
	for _, mech := range []string{"SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "PLAIN"} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			if !slices.Contains(offered, mech) {
				if mech == "SCRAM-SHA-256-PLUS" {
					t.Skipf("Dovecot does not offer %s (offers %v)", mech, offered)
				}
				t.Fatalf("Dovecot does not offer %s (offers %v)", mech, offered)
			}
			a, err := auth.New(mech, aliceCreds(t, cfg, s.addr))
			if err != nil {
				t.Fatal(err)
			}
			authAndSend(t, cfg, s, a, mech)
		})
	}
}

// strongest returns the mechanism a Config with the preference pref should
// pick among offered for password credentials without a token.
func strongest(pref, offered []string) string {
	for _, m := range pref {
		m = strings.ToUpper(m)
		if m == "XOAUTH2" || m == "OAUTHBEARER" || m == "EXTERNAL" || m == "ANONYMOUS" {
			continue // need a token, a client certificate, or another identity
		}
		if slices.Contains(offered, m) {
			return m
		}
	}
	return ""
}

// TestAuthNegotiation: an auth.Config picks the strongest mechanism that
// both sides allow, in the client's order, never the server's.
func TestAuthNegotiation(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	servers := postfixAuthServers(cfg)
	if cfg.DovecotSubmission != "" {
		servers = append(servers, dovecotAuthServer(t, cfg))
	}
	prefs := [][]string{
		nil, // auth.DefaultPreference
		{"CRAM-MD5", "PLAIN", "LOGIN"},
		{"login", "plain"},
		{"XOAUTH2", "PLAIN"}, // XOAUTH2 without a token is skipped
		{"SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"},
	}
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			offered := s.offered(t, cfg)
			for i, pref := range prefs {
				t.Run(fmt.Sprintf("pref%d", i), func(t *testing.T) {
					t.Parallel()
					order := pref
					if order == nil {
						order = auth.DefaultPreference()
					}
					want := strongest(order, offered)
					if want == "" {
						t.Fatalf("no mechanism of %v offered by %s (%v)", order, s.name, offered)
					}
					if pref == nil && slices.Contains(offered, "SCRAM-SHA-256") && !strings.HasPrefix(want, "SCRAM-SHA-256") {
						t.Fatalf("test bug: expected %s for the default preference", want)
					}
					a := auth.Config{Credentials: aliceCreds(t, cfg, s.addr), Mechanisms: pref}
					authAndSend(t, cfg, s, a, want)
				})
			}
		})
	}
}

// TestAuthWrongPassword: a wrong password fails at OpAuth with a 535
// ReplyError, permanently, before MAIL; neither the transcript nor the
// error holds the password in any form.
func TestAuthWrongPassword(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	type tc struct {
		s    authServer
		mech string
	}
	var cases []tc
	for _, s := range postfixAuthServers(cfg) {
		for _, m := range []string{"PLAIN", "LOGIN", "CRAM-MD5"} {
			cases = append(cases, tc{s, m})
		}
	}
	if cfg.DovecotSubmission != "" {
		d := dovecotAuthServer(t, cfg)
		for _, m := range []string{"SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"} {
			cases = append(cases, tc{d, m})
		}
	}
	alice := cfg.Alice.Address(cfg.Domain)
	for _, c := range cases {
		t.Run(c.s.name+"/"+c.mech, func(t *testing.T) {
			t.Parallel()
			wrong := "Wrong-" + marker(t) + "-pw"
			creds := auth.Credentials{Username: cfg.Alice.Name, Password: wrong, Host: hostOf(t, c.s.addr)}
			a, err := auth.New(c.mech, creds)
			if err != nil {
				t.Fatal(err)
			}
			var debug syncBuffer
			tr := c.s.transport(t, cfg, a, &debug)
			id := marker(t)
			msg := message(id, alice, "wrong password", "must not be delivered\r\n")
			res, err := tr.Send(testCtx(t, time.Minute), envelope.New(sender, alice), bytes.NewReader(msg))
			if err == nil {
				t.Fatal("Send with a wrong password succeeded")
			}
			var oe *transport.OpError
			if !errors.As(err, &oe) || oe.Op != transport.OpAuth {
				t.Errorf("error %v (%T), want an *OpError at %s", err, err, transport.OpAuth)
			}
			var re *transport.ReplyError
			if !errors.As(err, &re) || re.Code != 535 {
				t.Errorf("error %v, want a 535 ReplyError", err)
			}
			if !errors.Is(err, transport.ErrPermanent) || errors.Is(err, transport.ErrTransient) {
				t.Errorf("error %v is not classified permanent", err)
			}
			checkResult(t, res, addrsOf(alice), []wantRcpt{{outcome: transport.PermFailed}})
			for _, verb := range []string{"MAIL", "RCPT", "DATA", "BDAT"} {
				if debug.sentVerb(verb) {
					t.Errorf("%s sent after a failed AUTH", verb)
				}
			}
			assertNoSecret(t, cfg.Alice.Name, wrong, map[string]string{
				"transcript":    debug.String(),
				"error":         fmt.Sprintf("%v %+v %#v", err, err, err),
				"result":        rcptSummary(res),
				"authenticator": fmt.Sprintf("%v %+v %#v %s", a, a, a, creds),
			})
			interoptest.AssertNoMaildir(t, cfg.VirtualMaildir("alice"), id, settleTime)
		})
	}
}

// TestAuthRetryOnSession: after a refused AUTH the session stays usable for
// another attempt, which succeeds, and a message goes through.
func TestAuthRetryOnSession(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	s := postfixAuthServers(cfg)[0]
	var debug syncBuffer
	tr := s.transport(t, cfg, nil, &debug)
	ctx := testCtx(t, time.Minute)
	c, err := tr.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wrong := "Wrong-" + marker(t)
	bad, _ := auth.New("PLAIN", auth.Credentials{Username: cfg.Alice.Name, Password: wrong, Host: hostOf(t, s.addr)})
	err = c.Authenticate(ctx, bad)
	var re *transport.ReplyError
	if !errors.As(err, &re) || re.Code != 535 {
		t.Fatalf("Authenticate with a wrong password: %v, want 535", err)
	}
	good, _ := auth.New("LOGIN", aliceCreds(t, cfg, s.addr))
	if err := c.Authenticate(ctx, good); err != nil {
		t.Fatalf("second Authenticate: %v", err)
	}
	if c.AuthMechanism() != "LOGIN" {
		t.Errorf("AuthMechanism() = %q", c.AuthMechanism())
	}
	alice := cfg.Alice.Address(cfg.Domain)
	id := marker(t)
	msg := message(id, alice, "second AUTH", "after a failed AUTH\r\n")
	if _, err := c.Send(ctx, envelope.New(sender, alice), bytes.NewReader(msg)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	expectDelivered(t, cfg.VirtualMaildir("alice"), id, msg)
	assertNoSecret(t, cfg.Alice.Name, wrong, map[string]string{"transcript": debug.String(), "error": err.Error()})
	assertNoSecret(t, cfg.Alice.Name, cfg.Alice.Password, map[string]string{"transcript": debug.String()})
}

// TestAuthHostBinding: credentials bound to another host are never sent.
func TestAuthHostBinding(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	s := postfixAuthServers(cfg)[0]
	a, err := auth.New("PLAIN", auth.Credentials{Username: cfg.Alice.Name, Password: cfg.Alice.Password, Host: "smtp.elsewhere.example"})
	if err != nil {
		t.Fatal(err)
	}
	var debug syncBuffer
	tr := s.transport(t, cfg, a, &debug)
	alice := cfg.Alice.Address(cfg.Domain)
	id := marker(t)
	res, err := tr.Send(testCtx(t, time.Minute), envelope.New(sender, alice), bytes.NewReader(message(id, alice, "host binding", "no\r\n")))
	if !errors.Is(err, auth.ErrHostMismatch) {
		t.Fatalf("error %v, want one wrapping auth.ErrHostMismatch", err)
	}
	var oe *transport.OpError
	if !errors.As(err, &oe) || oe.Op != transport.OpAuth {
		t.Errorf("error %v, want an *OpError at %s", err, transport.OpAuth)
	}
	if res == nil || res.Count(transport.Accepted) != 0 {
		t.Errorf("Result %s", rcptSummary(res))
	}
	for _, verb := range []string{"AUTH", "MAIL"} {
		if debug.sentVerb(verb) {
			t.Errorf("%s sent with credentials bound to another host:\n%s", verb, debug.String())
		}
	}
	assertNoSecret(t, cfg.Alice.Name, cfg.Alice.Password, map[string]string{"transcript": debug.String(), "error": err.Error()})
	interoptest.AssertNoMaildir(t, cfg.VirtualMaildir("alice"), id, settleTime)
}
