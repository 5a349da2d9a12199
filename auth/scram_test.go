package auth_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/mailwire/mailwire/auth"
	"github.com/xdg-go/scram"
)

func TestSCRAMVectors(t *testing.T) {
	// RFC 5802 section 5 and RFC 7677 section 3.
	for _, tc := range []struct {
		mech, nonce string
		steps       []string // client-first, server-first, client-final, server-final
	}{
		{"SCRAM-SHA-1", "fyko+d2lbbFgONRv9qkxdawL", []string{
			"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
			"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
			"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
			"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
		}},
		{"SCRAM-SHA-256", "rOprNGfwEbeRWgbNEkqO", []string{
			"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
			"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
			"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
			"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		}},
	} {
		t.Run(tc.mech, func(t *testing.T) {
			cred := auth.Credentials{Username: "user", Password: "pencil"}
			// No TLS: the GS2 flag is "n", as in the RFCs.
			c, err := start(auth.SCRAMWithNonce(tc.mech, tc.nonce), cred, auth.ServerInfo{Unix: true})
			if err != nil {
				t.Fatal(err)
			}
			mech, ir, err := c.Start()
			if mech != tc.mech || string(ir) != tc.steps[0] || err != nil {
				t.Fatalf("Start() = %q, %q, %v; want %q", mech, ir, err, tc.steps[0])
			}
			got, err := c.Next([]byte(tc.steps[1]))
			if string(got) != tc.steps[2] || err != nil {
				t.Fatalf("Next(server-first) = %q, %v; want %q", got, err, tc.steps[2])
			}
			if err := c.(auth.Finisher).Finish(); !errors.Is(err, auth.ErrServerNotVerified) {
				t.Errorf("Finish() before server-final = %v, want ErrServerNotVerified", err)
			}
			got, err = c.Next([]byte(tc.steps[3]))
			if got == nil || len(got) != 0 || err != nil {
				t.Fatalf("Next(server-final) = %q, %v; want empty response", got, err)
			}
			if err := c.(auth.Finisher).Finish(); err != nil {
				t.Errorf("Finish() = %v", err)
			}
			if _, err := c.Next([]byte("more")); !errors.Is(err, sasl.ErrUnexpectedServerChallenge) {
				t.Errorf("extra challenge: err = %v", err)
			}
		})
	}
}

// scramServer adapts xdg-go/scram's server conversation to sasl.Server,
// the way an SMTP server runs SCRAM: server-final goes in a 334 challenge
// and the client answers it with an empty response. forge, if set, rewrites
// the server-final message.
type scramServer struct {
	conv    *scram.ServerConversation
	forge   func(string) string
	final   bool
	failure error
}

func (s *scramServer) Next(resp []byte) ([]byte, bool, error) {
	if s.final {
		if len(resp) != 0 {
			return nil, true, errors.New("non-empty response to server-final")
		}
		if s.failure != nil {
			return nil, true, s.failure
		}
		return nil, true, nil
	}
	out, err := s.conv.Step(string(resp))
	if err != nil {
		if out == "" {
			return nil, true, err
		}
		// An "e=" message: send it, fail after the client's answer.
		s.final, s.failure = true, err
		return []byte(out), false, nil
	}
	if s.conv.Done() {
		s.final = true
		if s.forge != nil {
			out = s.forge(out)
		}
	}
	return []byte(out), false, nil
}

func newSCRAMServer(t *testing.T, hash scram.HashGeneratorFcn, user, pass string) *scram.Server {
	t.Helper()
	kf := scram.KeyFactors{Salt: "0123456789abcdef", Iters: 4096}
	cl, err := hash.NewClient(user, pass, "")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := cl.GetStoredCredentialsWithError(kf)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := hash.NewServer(func(u string) (scram.StoredCredentials, error) {
		if u != user {
			return scram.StoredCredentials{}, errors.New("unknown user")
		}
		return stored, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func TestSCRAMAgainstServer(t *testing.T) {
	const user, pass = "alice", "correct horse"
	for _, m := range []struct {
		name string
		f    auth.NewFunc
		hash scram.HashGeneratorFcn
	}{
		{"SCRAM-SHA-1", auth.SCRAMSHA1, scram.SHA1},
		{"SCRAM-SHA-256", auth.SCRAMSHA256, scram.SHA256},
	} {
		t.Run(m.name, func(t *testing.T) {
			srv := newSCRAMServer(t, m.hash, user, pass)
			info := auth.ServerInfo{Unix: true}

			// Right password.
			c, err := start(m.f, auth.Credentials{Username: user, Password: pass}, info)
			if err != nil {
				t.Fatal(err)
			}
			ss := &scramServer{conv: srv.NewConversation()}
			if _, err := exchange(c, ss); err != nil {
				t.Errorf("exchange err = %v", err)
			}
			if !ss.conv.Valid() {
				t.Error("server: conversation not valid")
			}

			// Authorization identity.
			c, _ = start(m.f, auth.Credentials{Identity: "bob,admin", Username: user, Password: pass}, info)
			ss = &scramServer{conv: srv.NewConversation()}
			if _, err := exchange(c, ss); err != nil || ss.conv.AuthzID() != "bob,admin" {
				t.Errorf("with authzid: err = %v, server authzid %q", err, ss.conv.AuthzID())
			}

			// Wrong password: the server sends e=invalid-proof, the client
			// answers with an empty response, the server fails.
			c, _ = start(m.f, auth.Credentials{Username: user, Password: "wrong"}, info)
			ss = &scramServer{conv: srv.NewConversation()}
			sent, err := exchange(c, ss)
			if !errors.Is(err, errServerRefused) {
				t.Errorf("wrong password: err = %v, want server refusal", err)
			}
			if len(sent) != 3 || len(sent[2]) != 0 {
				t.Errorf("wrong password: sent %q, want an empty answer to e=", sent)
			}
			if err := c.(auth.Finisher).Finish(); !errors.Is(err, auth.ErrServerNotVerified) {
				t.Errorf("wrong password: Finish() = %v", err)
			}

			// A server that does not know the password forges its
			// signature: the client refuses it.
			forge := func(s string) string {
				sig, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "v="))
				sig[0] ^= 1
				return "v=" + base64.StdEncoding.EncodeToString(sig)
			}
			c, _ = start(m.f, auth.Credentials{Username: user, Password: pass}, info)
			ss = &scramServer{conv: srv.NewConversation(), forge: forge}
			if _, err := exchange(c, ss); !errors.Is(err, auth.ErrServerNotVerified) {
				t.Errorf("forged signature: err = %v, want ErrServerNotVerified", err)
			}

			// A server that skips server-final and reports success.
			c, _ = start(m.f, auth.Credentials{Username: user, Password: pass}, info)
			_, ir, _ := c.Start()
			sconv := srv.NewConversation()
			s1, _ := sconv.Step(string(ir))
			if _, err := c.Next([]byte(s1)); err != nil {
				t.Fatal(err)
			}
			if err := c.(auth.Finisher).Finish(); !errors.Is(err, auth.ErrServerNotVerified) {
				t.Errorf("missing server-final: Finish() = %v, want ErrServerNotVerified", err)
			}
		})
	}
}

func TestSCRAMServerFirstChecks(t *testing.T) {
	cred := auth.Credentials{Username: "user", Password: "pencil"}
	for _, tc := range []struct{ name, serverFirst string }{
		{"nonce not extended", "r=somethingelse,s=QSXCR+Q6sek8bf92,i=4096"},
		{"too few iterations", "r=fyko+d2lbbFgONRv9qkxdawLmore,s=QSXCR+Q6sek8bf92,i=1024"},
		{"garbage", "hello"},
		{"server error", "e=other-error"},
	} {
		c, _ := start(auth.SCRAMWithNonce("SCRAM-SHA-1", "fyko+d2lbbFgONRv9qkxdawL"), cred, auth.ServerInfo{Unix: true})
		c.Start()
		if resp, err := c.Next([]byte(tc.serverFirst)); err == nil {
			t.Errorf("%s: Next() = %q, nil; want an error", tc.name, resp)
		}
	}
}

func TestSCRAMGS2Flag(t *testing.T) {
	cred := auth.Credentials{Username: "user", Password: "pencil"}
	for _, tc := range []struct {
		name string
		info auth.ServerInfo
		want string
	}{
		{"no TLS", auth.ServerInfo{Unix: true, Mechanisms: []string{"SCRAM-SHA-256"}}, "n,,"},
		// The client supports binding and the server offers no -PLUS:
		// "y", so that a stripped -PLUS offer is detected.
		{"TLS, no PLUS offered", auth.ServerInfo{TLS: tlsState(), Mechanisms: []string{"SCRAM-SHA-256"}}, "y,,"},
		// The server offers -PLUS but the caller chose otherwise.
		{"TLS, PLUS offered", auth.ServerInfo{TLS: tlsState(), Mechanisms: []string{"SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"}}, "n,,"},
		// TLS without binding data: the client cannot bind.
		{"TLS without tls-unique", auth.ServerInfo{TLS: &tlsStateNoUnique, Mechanisms: []string{"SCRAM-SHA-256"}}, "n,,"},
	} {
		c, err := start(auth.SCRAMSHA256, cred, tc.info)
		if err != nil {
			t.Fatal(err)
		}
		if _, ir, _ := c.Start(); !strings.HasPrefix(string(ir), tc.want) {
			t.Errorf("%s: client-first %q, want prefix %q", tc.name, ir, tc.want)
		}
	}
	c, _ := start(auth.SCRAMSHA256Plus, cred, auth.ServerInfo{TLS: tlsState()})
	if _, ir, _ := c.Start(); !strings.HasPrefix(string(ir), "p=tls-unique,,") {
		t.Errorf("-PLUS on TLS 1.2: client-first %q", ir)
	}
	if _, err := start(auth.SCRAMSHA256Plus, cred, auth.ServerInfo{Unix: true}); err == nil {
		t.Error("-PLUS without TLS: err = nil")
	}
}

func TestSCRAMSASLprep(t *testing.T) {
	// SASLprep maps U+00AD (soft hyphen) to nothing: both spellings
	// authenticate.
	srv := newSCRAMServer(t, scram.SHA256, "user", "pencil")
	c, _ := start(auth.SCRAMSHA256, auth.Credentials{Username: "user", Password: "pen\u00adcil"}, auth.ServerInfo{Unix: true})
	if _, err := exchange(c, &scramServer{conv: srv.NewConversation()}); err != nil {
		t.Errorf("exchange err = %v", err)
	}
	// A prohibited character is refused locally.
	if _, err := start(auth.SCRAMSHA256, auth.Credentials{Username: "user", Password: "pen\u0007cil"}, auth.ServerInfo{Unix: true}); !errors.Is(err, auth.ErrMalformedCredentials) {
		t.Errorf("prohibited character: err = %v, want ErrMalformedCredentials", err)
	}
}
