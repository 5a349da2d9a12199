package acmerelay_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mailwire/mailwire/config"
	"github.com/mailwire/mailwire/dialer"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"

	_ "github.com/mailwire/mailwire/examples/custom-transport/acmerelay" // registers acme-relay
)

const file = `
profiles:
  acme:
    transport:
      kind: acme-relay
      region: eu
      account: acct-42
      api_key_env: ACME_API_KEY
`

func TestSendsThroughTheRelay(t *testing.T) {
	srv := smtptest.NewUnstartedServer()
	srv.Security = transport.StartTLS
	srv.Users = map[string]string{"acct-42": "test-key"}
	srv.RequireAuth = true
	srv.Start()
	defer srv.Close()

	t.Setenv("ACME_API_KEY", "test-key")
	cfg, err := config.Parse("mail.yaml", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cfg.Transport("acme", config.WithAdjust(func(t transport.Transport) {
		s := t.(*transport.SMTP)
		s.Dialer = dialer.Fixed("tcp", srv.Addr, nil) // dial the test server
		s.TLSConfig = srv.ClientTLSConfig()           // and trust its test CA
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer transport.CloseIdleConnections(tr)

	msg := "Subject: hi\r\n\r\nHello.\r\n"
	if _, err := tr.Send(context.Background(), envelope.New("app@example.org", "bob@example.org"), strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	if got := srv.Messages()[0].AuthUser; got != "acct-42" {
		t.Errorf("authenticated as %q, want acct-42", got)
	}
}

func TestSecretIsReadWhenBuilt(t *testing.T) {
	// ACME_API_KEY is not set: Parse does not read secrets, so it passes;
	// building the profile fails.
	cfg, err := config.Parse("mail.yaml", []byte(file))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	_, err = cfg.Transport("acme")
	if !errors.Is(err, config.ErrMissingSecret) {
		t.Errorf("Transport = %v, want an error matching config.ErrMissingSecret", err)
	}
}

func TestErrorsNameTheLine(t *testing.T) {
	for _, tt := range []struct{ body, want string }{
		{"region: mars\n      account: a\n      api_key_env: K", `mail.yaml:6: profiles.acme.transport.region: unknown region "mars": eu or us`},
		{"region: eu\n      api_key_env: K", `mail.yaml:4: profiles.acme.transport.account: required`},
		{"region: eu\n      account: a", `mail.yaml:4: profiles.acme.transport.api_key: required: api_key_env or api_key_file`},
		{"region: eu\n      account: a\n      api_key: k", `mail.yaml:8: profiles.acme.transport.api_key: a secret written in the file must be marked`},
		{"region: eu\n      acount: a\n      api_key_env: K", `mail.yaml:7: profiles.acme.transport.acount: unknown key; did you mean account?`},
	} {
		y := "\nprofiles:\n  acme:\n    transport:\n      kind: acme-relay\n      " + tt.body + "\n"
		_, err := config.Parse("mail.yaml", []byte(y))
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("Parse:\n%s\n= %v\nwant %s", y, err, tt.want)
		}
	}
}
