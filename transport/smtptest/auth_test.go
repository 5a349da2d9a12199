package smtptest_test

import (
	"errors"
	"net/smtp"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/xdg-go/scram"

	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

var users = map[string]string{"alice": "s3cret", "bob": "hunter2"}

func authServer(t *testing.T, configure func(s *smtptest.Server)) *smtptest.Server {
	t.Helper()
	s := smtptest.NewUnstartedServer()
	s.Users = users
	if configure != nil {
		configure(s)
	}
	return start(t, s)
}

func authMechanisms(t *testing.T, c *smtp.Client) []string {
	t.Helper()
	ok, params := c.Extension("AUTH")
	if !ok {
		return nil
	}
	return strings.Fields(params)
}

func TestAuthPlain(t *testing.T) {
	s := authServer(t, nil)
	c := client(t, s)
	if got, want := authMechanisms(t, c), []string{"LOGIN", "PLAIN"}; !slices.Equal(got, want) {
		t.Errorf("AUTH mechanisms = %q, want %q", got, want)
	}
	if err := c.Auth(smtp.PlainAuth("", "alice", "s3cret", "127.0.0.1")); err != nil {
		t.Fatalf("Auth: %v", err)
	}
	if err := send(c, "alice@example.org", []string{"b@example.org"}, body); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	if msgs := s.Messages(); len(msgs) != 1 || msgs[0].AuthUser != "alice" {
		t.Fatalf("messages = %+v, want one with AuthUser alice", msgs)
	}

	for _, tc := range []struct{ name, identity, user, password string }{
		{"wrong-password", "", "alice", "nope"},
		{"unknown-user", "", "mallory", "s3cret"},
		{"other-identity", "bob", "alice", "s3cret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := client(t, s)
			err := c.Auth(smtp.PlainAuth(tc.identity, tc.user, tc.password, "127.0.0.1"))
			wantReply(t, "AUTH PLAIN", err, 535, "5.7.8 Authentication credentials invalid")
		})
	}
}

// loginAuth is the client side of LOGIN for net/smtp.
type loginAuth struct {
	user, password string
	initial        bool // send the user name as an initial response
}

func (a *loginAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	if a.initial {
		return "LOGIN", []byte(a.user), nil
	}
	return "LOGIN", nil, nil
}

func (a *loginAuth) Next(challenge []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	switch string(challenge) {
	case "Username:":
		return []byte(a.user), nil
	case "Password:":
		return []byte(a.password), nil
	}
	return nil, errors.New("unexpected LOGIN challenge " + string(challenge))
}

func TestAuthLogin(t *testing.T) {
	s := authServer(t, nil)
	for _, initial := range []bool{false, true} {
		c := client(t, s)
		if err := c.Auth(&loginAuth{user: "bob", password: "hunter2", initial: initial}); err != nil {
			t.Fatalf("Auth LOGIN (initial response %v): %v", initial, err)
		}
		c.Quit()
		c = client(t, s)
		err := c.Auth(&loginAuth{user: "bob", password: "wrong", initial: initial})
		wantReply(t, "AUTH LOGIN", err, 535, "5.7.8 Authentication credentials invalid")
	}
}

func TestAuthCRAMMD5(t *testing.T) {
	s := authServer(t, func(s *smtptest.Server) {
		s.AuthMechanisms = map[string]smtptest.AuthMechanism{"cram-md5": smtptest.CRAMMD5, "PLAIN": smtptest.Plain}
	})
	c := client(t, s)
	if got, want := authMechanisms(t, c), []string{"CRAM-MD5", "PLAIN"}; !slices.Equal(got, want) {
		t.Errorf("AUTH mechanisms = %q, want %q", got, want)
	}
	if err := c.Auth(smtp.CRAMMD5Auth("alice", "s3cret")); err != nil {
		t.Fatalf("Auth CRAM-MD5: %v", err)
	}
	c.Quit()
	c = client(t, s)
	wantReply(t, "AUTH CRAM-MD5", c.Auth(smtp.CRAMMD5Auth("alice", "wrong")), 535, "5.7.8 Authentication credentials invalid")
	c = client(t, s)
	wantReply(t, "AUTH LOGIN", c.Auth(&loginAuth{user: "bob", password: "hunter2"}), 504, "5.7.4 Unsupported authentication mechanism")
}

func TestAuthOnlyAfterTLS(t *testing.T) {
	s := authServer(t, func(s *smtptest.Server) { s.Security = transport.StartTLS })
	c := client(t, s)
	if got := authMechanisms(t, c); got != nil {
		t.Errorf("AUTH %q advertised before STARTTLS", got)
	}
	// net/smtp's PlainAuth would itself refuse; send the command raw.
	if err := c.Text.PrintfLine("AUTH PLAIN AGFsaWNlAHMzY3JldA=="); err != nil {
		t.Fatal(err)
	}
	code, msg, _ := c.Text.ReadResponse(0)
	if code != 523 || msg != "5.7.10 TLS is required" {
		t.Errorf("AUTH before TLS = %d %q, want 523 5.7.10", code, msg)
	}
	if err := c.StartTLS(s.ClientTLSConfig()); err != nil {
		t.Fatal(err)
	}
	if got, want := authMechanisms(t, c), []string{"LOGIN", "PLAIN"}; !slices.Equal(got, want) {
		t.Errorf("AUTH mechanisms after TLS = %q, want %q", got, want)
	}
	if err := c.Auth(smtp.PlainAuth("", "alice", "s3cret", "127.0.0.1")); err != nil {
		t.Fatal(err)
	}

	insecure := authServer(t, func(s *smtptest.Server) {
		s.Security = transport.StartTLS
		s.AllowInsecureAuth = true
	})
	c = client(t, insecure)
	if got := authMechanisms(t, c); len(got) == 0 {
		t.Error("AllowInsecureAuth: AUTH not advertised before STARTTLS")
	}
}

func TestAuthNotConfigured(t *testing.T) {
	s := smtptest.NewServer()
	defer s.Close()
	r := newRaw(t, s)
	r.must(250, "EHLO client.example")
	if code, msg := r.cmd("AUTH PLAIN AGFsaWNlAHMzY3JldA=="); code != 502 || !strings.HasPrefix(msg, "5.7.0 ") {
		t.Errorf("AUTH on a server without mechanisms = %d %q, want 502 5.7.0", code, msg)
	}
}

// scramMechanism is a SCRAM-SHA-256 server (RFC 7677) on xdg-go/scram,
// checking the request's Users: the kind of mechanism the auth package's
// tests plug in through AuthMechanisms.
func scramMechanism(r *smtptest.AuthRequest) sasl.Server {
	srv, err := scram.SHA256.NewServer(func(user string) (scram.StoredCredentials, error) {
		password, ok := r.Users[user]
		if !ok {
			return scram.StoredCredentials{}, errors.New("unknown user")
		}
		c, err := scram.SHA256.NewClient(user, password, "")
		if err != nil {
			return scram.StoredCredentials{}, err
		}
		return c.GetStoredCredentials(scram.KeyFactors{Salt: "smtptest-salt", Iters: 4096}), nil
	})
	if err != nil {
		panic(err)
	}
	return &scramServer{conv: srv.NewConversation(), r: r}
}

type scramServer struct {
	conv *scram.ServerConversation
	r    *smtptest.AuthRequest
}

func (s *scramServer) Next(response []byte) ([]byte, bool, error) {
	if response == nil {
		return []byte{}, false, nil // ask for the client-first message
	}
	if s.conv.Done() {
		// The client acknowledged server-final with an empty response.
		if !s.conv.Valid() {
			return nil, false, errors.New("invalid proof")
		}
		s.r.Login(s.conv.Username())
		return nil, true, nil
	}
	out, err := s.conv.Step(string(response))
	if err != nil {
		return nil, false, err
	}
	return []byte(out), false, nil
}

// scramAuth is the client side of SCRAM-SHA-256 for net/smtp.
type scramAuth struct {
	conv *scram.ClientConversation
}

func newSCRAMAuth(t *testing.T, user, password string) *scramAuth {
	c, err := scram.SHA256.NewClient(user, password, "")
	if err != nil {
		t.Fatal(err)
	}
	return &scramAuth{conv: c.NewConversation()}
}

func (a *scramAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	first, err := a.conv.Step("")
	return "SCRAM-SHA-256", []byte(first), err
}

func (a *scramAuth) Next(challenge []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	resp, err := a.conv.Step(string(challenge))
	if err != nil {
		return nil, err
	}
	return []byte(resp), nil // empty after server-final: acknowledge it
}

func TestAuthMechanismHook(t *testing.T) {
	s := authServer(t, func(s *smtptest.Server) {
		s.AuthMechanisms = map[string]smtptest.AuthMechanism{
			"SCRAM-SHA-256": scramMechanism,
			"X-TEMPFAIL": func(*smtptest.AuthRequest) sasl.Server {
				return sasl.NewPlainServer(func(_, _, _ string) error {
					return &transport.ReplyError{Code: 454, EnhancedCode: transport.EnhancedCode{4, 7, 0}, Message: "temporary authentication failure"}
				})
			},
			"X-FORGETFUL": func(*smtptest.AuthRequest) sasl.Server {
				return sasl.NewPlainServer(func(_, _, _ string) error { return nil }) // never calls Login
			},
			"EXTERNAL": func(r *smtptest.AuthRequest) sasl.Server {
				return sasl.NewExternalServer(func(identity string) error {
					if r.TLS == nil {
						return errors.New("EXTERNAL needs TLS")
					}
					r.Login(identity)
					return nil
				})
			},
		}
	})

	c := client(t, s)
	if got, want := authMechanisms(t, c), []string{"EXTERNAL", "SCRAM-SHA-256", "X-FORGETFUL", "X-TEMPFAIL"}; !slices.Equal(got, want) {
		t.Errorf("AUTH mechanisms = %q, want %q", got, want)
	}
	if err := c.Auth(newSCRAMAuth(t, "bob", "hunter2")); err != nil {
		t.Fatalf("Auth SCRAM-SHA-256: %v", err)
	}
	if err := send(c, "bob@example.org", []string{"c@example.org"}, body); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	if msgs := s.Messages(); len(msgs) != 1 || msgs[0].AuthUser != "bob" {
		t.Errorf("messages = %+v, want one with AuthUser bob", msgs)
	}

	c = client(t, s)
	wantReply(t, "SCRAM wrong password", c.Auth(newSCRAMAuth(t, "bob", "wrong")), 535, "5.7.8 Authentication credentials invalid")

	r := newRaw(t, s)
	r.must(250, "EHLO client.example")
	if code, msg := r.cmd("AUTH X-TEMPFAIL AGFsaWNlAHg="); code != 454 || msg != "4.7.0 temporary authentication failure" {
		t.Errorf("AUTH X-TEMPFAIL = %d %q, want the hook's 454 4.7.0", code, msg)
	}
	if code, msg := r.cmd("AUTH X-FORGETFUL AGFsaWNlAHg="); code != 454 || !strings.Contains(msg, "without calling Login") {
		t.Errorf("AUTH X-FORGETFUL = %d %q, want 454 for a mechanism that never called Login", code, msg)
	}
	if code, _ := r.cmd("AUTH EXTERNAL YWxpY2U="); code != 535 {
		t.Errorf("AUTH EXTERNAL without TLS = %d, want 535", code)
	}
}

func TestAuthUserResetByStartTLS(t *testing.T) {
	s := authServer(t, func(s *smtptest.Server) {
		s.Security = transport.StartTLS
		s.AllowInsecureAuth = true
	})
	c := client(t, s)
	if err := c.Auth(smtp.PlainAuth("", "alice", "s3cret", "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := c.StartTLS(s.ClientTLSConfig()); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "a@example.org", []string{"b@example.org"}, body); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	if msgs := s.Messages(); len(msgs) != 1 || msgs[0].AuthUser != "" || !msgs[0].TLS {
		t.Errorf("messages = %+v, want one over TLS with no AuthUser (STARTTLS resets the session)", msgs)
	}
}
