// Package acmerelay registers the transport kind "acme-relay":
// submission to the relay of the (made-up) Acme Mail service, given a
// region, an account and its API key.
package acmerelay

import (
	"net"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/config"
	"github.com/mailwire/mailwire/transport"
)

// Kind is the name the kind is registered under.
const Kind = "acme-relay"

func init() { config.RegisterTransport(Kind, build) }

// params are the keys of an acme-relay transport, besides kind.
type params struct {
	Region  string        `yaml:"region"`  // eu or us
	Account string        `yaml:"account"` // the account name, sent as the user name
	APIKey  config.Secret `yaml:"api_key"` // api_key_env, api_key_file, or a marked api_key
	TLS     *config.TLS   `yaml:"tls"`     // the shared tls block; nil if absent
}

var relays = map[string]string{
	"eu": "smtp.eu.acme.example:587",
	"us": "smtp.us.acme.example:587",
}

// build is the config.TransportFunc of acme-relay.
func build(p *config.Params) (transport.Transport, error) {
	var ap params
	if err := p.Decode(&ap); err != nil { // strict: unknown keys, wrong types, missing secrets
		return nil, err
	}
	addr, ok := relays[ap.Region]
	if !ok {
		return nil, p.Errorf("region", "unknown region %q: eu or us", ap.Region)
	}
	if ap.Account == "" {
		return nil, p.Errorf("account", "required")
	}
	// Parse calls build with p.Checking() true and does not read secrets:
	// ap.APIKey.Value() is "" then. Check that a key is given, not its value.
	if !ap.APIKey.IsSet() {
		return nil, p.Errorf("api_key", "required: api_key_env or api_key_file")
	}
	tc, err := ap.TLS.Config() // nil without a tls block: the system's roots
	if err != nil {
		return nil, p.Errorf("tls", "%v", err)
	}
	host, _, _ := net.SplitHostPort(addr)
	return &transport.SMTP{
		Addr:      addr,
		Security:  transport.StartTLS,
		TLSConfig: tc,
		Auth: auth.Config{
			Credentials: auth.Credentials{Username: ap.Account, Password: ap.APIKey.Value(), Host: host},
			Mechanisms:  []string{"PLAIN"},
		},
	}, nil
}
