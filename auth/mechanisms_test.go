package auth_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/mailwire/mailwire/auth"
)

var tlsInfo = auth.ServerInfo{Host: "mail.example.org", TLS: tlsState()}

func TestPlain(t *testing.T) {
	// RFC 4616 section 4, with and without an authorization identity.
	for _, tc := range []struct {
		c    auth.Credentials
		want string
	}{
		{auth.Credentials{Username: "tim", Password: "tanstaaftanstaaf"}, "\x00tim\x00tanstaaftanstaaf"},
		{auth.Credentials{Identity: "Ursel", Username: "Kurt", Password: "xipj3plmq"}, "Ursel\x00Kurt\x00xipj3plmq"},
	} {
		c, err := start(auth.Plain, tc.c, tlsInfo)
		if err != nil {
			t.Fatalf("Plain() err = %v", err)
		}
		var got auth.Credentials
		srv := sasl.NewPlainServer(func(identity, username, password string) error {
			got = auth.Credentials{Identity: identity, Username: username, Password: password}
			return nil
		})
		sent, err := exchange(c, srv)
		if err != nil {
			t.Fatalf("exchange err = %v", err)
		}
		if len(sent) != 1 || string(sent[0]) != tc.want {
			t.Errorf("sent %q, want [%q]", sent, tc.want)
		}
		if got.Identity != tc.c.Identity || got.Username != tc.c.Username || got.Password != tc.c.Password {
			t.Errorf("server got %#v", got)
		}
	}
	if _, err := start(auth.Plain, auth.Credentials{Username: "tim"}, tlsInfo); err == nil {
		t.Error("Plain() without a password: err = nil")
	}
}

// loginServer plays the classic LOGIN exchange.
type loginServer struct {
	step       int
	user, pass string
}

func (s *loginServer) Next(resp []byte) ([]byte, bool, error) {
	s.step++
	switch s.step {
	case 1:
		if resp != nil {
			return nil, true, errors.New("unexpected initial response")
		}
		return []byte("Username:"), false, nil
	case 2:
		s.user = string(resp)
		return []byte("Password:"), false, nil
	case 3:
		s.pass = string(resp)
		return nil, true, nil
	}
	return nil, true, errors.New("too many steps")
}

func TestLogin(t *testing.T) {
	c, err := start(auth.Login, auth.Credentials{Username: "tim", Password: "tanstaaftanstaaf"}, tlsInfo)
	if err != nil {
		t.Fatal(err)
	}
	srv := &loginServer{}
	if _, err := exchange(c, srv); err != nil {
		t.Fatalf("exchange err = %v", err)
	}
	if srv.user != "tim" || srv.pass != "tanstaaftanstaaf" {
		t.Errorf("server got %q/%q", srv.user, srv.pass)
	}
	if _, err := c.Next([]byte("Again:")); !errors.Is(err, sasl.ErrUnexpectedServerChallenge) {
		t.Errorf("third challenge: err = %v, want ErrUnexpectedServerChallenge", err)
	}
	if _, err := start(auth.Login, auth.Credentials{Identity: "other", Username: "tim", Password: "x"}, tlsInfo); err == nil {
		t.Error("Login() with an authorization identity: err = nil")
	}
}

func TestCRAMMD5(t *testing.T) {
	// RFC 2195 section 2.
	c, err := start(auth.CRAMMD5, auth.Credentials{Username: "tim", Password: "tanstaaftanstaaf"}, tlsInfo)
	if err != nil {
		t.Fatal(err)
	}
	mech, ir, err := c.Start()
	if mech != "CRAM-MD5" || ir != nil || err != nil {
		t.Fatalf("Start() = %q, %q, %v", mech, ir, err)
	}
	got, err := c.Next([]byte("<1896.697170952@postoffice.reston.mci.net>"))
	if want := "tim b913a602c7eda7a495b4e6e7334d3890"; string(got) != want || err != nil {
		t.Errorf("Next() = %q, %v; want %q", got, err, want)
	}
	if _, err := c.Next([]byte("<again@example>")); !errors.Is(err, sasl.ErrUnexpectedServerChallenge) {
		t.Errorf("second challenge: err = %v, want ErrUnexpectedServerChallenge", err)
	}
	c, _ = start(auth.CRAMMD5, auth.Credentials{Username: "tim", Password: "x"}, tlsInfo)
	if _, err := c.Next(nil); err == nil {
		t.Error("empty challenge: err = nil")
	}
}

func TestXOAUTH2(t *testing.T) {
	calls := 0
	cred := auth.Credentials{
		Username: "someuser@example.com",
		Token: func(ctx context.Context) (string, error) {
			calls++
			return "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg", nil
		},
	}
	c, err := start(auth.XOAUTH2, cred, tlsInfo)
	if err != nil {
		t.Fatal(err)
	}
	mech, ir, err := c.Start()
	// The format Google and Microsoft document.
	want := "user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
	if mech != "XOAUTH2" || string(ir) != want || err != nil {
		t.Errorf("Start() = %q, %q, %v; want XOAUTH2, %q", mech, ir, err, want)
	}
	if calls != 1 {
		t.Errorf("token source called %d times, want 1", calls)
	}
	// A refused token: the server sends a JSON error, the client answers
	// with an empty response.
	resp, err := c.Next([]byte(`{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}`))
	if resp == nil || len(resp) != 0 || err != nil {
		t.Errorf("Next(error) = %q, %v; want empty response", resp, err)
	}
	if _, err := c.Next([]byte("more")); !errors.Is(err, sasl.ErrUnexpectedServerChallenge) {
		t.Errorf("second challenge: err = %v, want ErrUnexpectedServerChallenge", err)
	}
	for _, bad := range []auth.Credentials{
		{Username: "u"},           // no token
		{Token: staticToken("t")}, // no username
		{Identity: "x", Username: "u", Token: staticToken("t")},
	} {
		if _, err := start(auth.XOAUTH2, bad, tlsInfo); err == nil {
			t.Errorf("XOAUTH2(%+v) err = nil", bad)
		}
	}
}

func TestOAuthBearer(t *testing.T) {
	cred := auth.Credentials{Username: "user@example.com", Token: staticToken("vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==")}
	info := auth.ServerInfo{Host: "server.example.com", TLS: tlsState()}
	c, err := start(auth.OAuthBearer, cred, info)
	if err != nil {
		t.Fatal(err)
	}
	_, ir, _ := c.Start()
	// RFC 7628 section 4.1, without the optional port.
	want := "n,a=user@example.com,\x01host=server.example.com\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
	if string(ir) != want {
		t.Errorf("initial response %q, want %q", ir, want)
	}

	// Against go-sasl's server: accepted, then refused.
	for _, refuse := range []bool{false, true} {
		var got sasl.OAuthBearerOptions
		srv := sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
			got = o
			if refuse {
				return &sasl.OAuthBearerError{Status: "invalid_token", Schemes: "bearer"}
			}
			return nil
		})
		c, _ := start(auth.OAuthBearer, cred, info)
		sent, err := exchange(c, srv)
		if refuse {
			if !errors.Is(err, errServerRefused) {
				t.Errorf("refused token: err = %v, want server refusal", err)
			}
			if len(sent) != 2 || !bytes.Equal(sent[1], []byte{1}) {
				t.Errorf("refused token: sent %q, want the 0x01 response last", sent)
			}
		} else if err != nil {
			t.Errorf("exchange err = %v", err)
		}
		if got.Username != "user@example.com" || got.Host != "server.example.com" || !strings.HasPrefix(got.Token, "vF9d") {
			t.Errorf("server got %+v", got)
		}
	}

	// The authzid is escaped (RFC 5801).
	c, _ = start(auth.OAuthBearer, auth.Credentials{Identity: "a,b=c", Token: staticToken("t")}, auth.ServerInfo{TLS: tlsState()})
	if _, ir, _ := c.Start(); !strings.HasPrefix(string(ir), "n,a=a=2Cb=3Dc,\x01auth=") {
		t.Errorf("escaped initial response %q", ir)
	}
}

func TestExternal(t *testing.T) {
	withCert := auth.ServerInfo{TLS: tlsState(), ClientCert: true}
	for _, tc := range []struct {
		info auth.ServerInfo
		ok   bool
	}{
		{withCert, true},
		{auth.ServerInfo{TLS: tlsState()}, false},
		{auth.ServerInfo{ClientCert: true}, false},
		{auth.ServerInfo{Unix: true}, false},
	} {
		c, err := start(auth.External, auth.Credentials{}, tc.info)
		if (err == nil) != tc.ok {
			t.Errorf("External(%+v) err = %v, want ok=%v", tc.info, err, tc.ok)
			continue
		}
		if err != nil {
			continue
		}
		// RFC 4422 appendix A.3: an empty response asks for the
		// certificate's identity.
		var got *string
		srv := sasl.NewExternalServer(func(id string) error { got = &id; return nil })
		if _, err := exchange(c, srv); err != nil || got == nil || *got != "" {
			t.Errorf("exchange err = %v, identity %v", err, got)
		}
	}
	c, _ := start(auth.External, auth.Credentials{Identity: "fred@example.com"}, withCert)
	if mech, ir, _ := c.Start(); mech != "EXTERNAL" || string(ir) != "fred@example.com" {
		t.Errorf("Start() = %q, %q", mech, ir)
	}
}

func TestAnonymous(t *testing.T) {
	// RFC 4505 section 4.
	c, err := start(auth.Anonymous, auth.Credentials{Username: "sirhc"}, auth.ServerInfo{})
	if err != nil {
		t.Fatal(err)
	}
	var trace string
	srv := sasl.NewAnonymousServer(func(tr string) error { trace = tr; return nil })
	if _, err := exchange(c, srv); err != nil || trace != "sirhc" {
		t.Errorf("exchange err = %v, trace %q", err, trace)
	}
	if _, err := start(auth.Anonymous, auth.Credentials{Username: strings.Repeat("x", 256)}, auth.ServerInfo{}); err == nil {
		t.Error("Anonymous() with a 256-character trace: err = nil")
	}
}
