package config

import (
	"crypto/tls"
	"net"
	"strings"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/dialer"
	"github.com/mailwire/mailwire/transport"
)

// The built-in transport kinds.
func init() {
	RegisterTransport("smtp", newSMTP(false))
	RegisterTransport("smtps", newSMTP(true))
	RegisterTransport("lmtp", newLMTP)
	RegisterTransport("failover", newFailover)
	RegisterTransport("sendmail", newSendmail)
}

// builtinParams maps each built-in kind and middleware to the struct its
// parameters decode into; the reference test checks docs/config.md
// against it.
var builtinParams = map[string]any{
	"transport smtp":       smtpParams{},
	"transport smtps":      smtpParams{},
	"transport lmtp":       lmtpParams{},
	"transport failover":   failoverParams{},
	"transport sendmail":   sendmailParams{},
	"middleware retry":     retryParams{},
	"middleware ratelimit": ratelimitParams{},
	"middleware timeout":   timeoutParams{},
	"middleware logging":   loggingParams{},
	"middleware tracing":   tracingParams{},
}

// smtpParams are the keys of the smtp and smtps kinds.
type smtpParams struct {
	Network              string              `yaml:"network"`
	Address              string              `yaml:"address"`
	Security             *transport.Security `yaml:"security"`
	LocalName            string              `yaml:"local_name"`
	TLS                  *TLS                `yaml:"tls"`
	Dialer               *Dialer             `yaml:"dialer"`
	Auth                 *Auth               `yaml:"auth"`
	Pool                 *Pool               `yaml:"pool"`
	RequireAllRecipients bool                `yaml:"require_all_recipients"`
	DisablePipelining    bool                `yaml:"disable_pipelining"`
	DisableChunking      bool                `yaml:"disable_chunking"`
}

func newSMTP(implicit bool) TransportFunc {
	return func(p *Params) (transport.Transport, error) {
		var sp smtpParams
		if err := p.Decode(&sp); err != nil {
			return nil, err
		}
		network, host, err := endpoint(p, sp.Network, sp.Address)
		if err != nil {
			return nil, err
		}
		t := &transport.SMTP{
			Network:              network,
			Addr:                 sp.Address,
			LocalName:            sp.LocalName,
			RequireAllRecipients: sp.RequireAllRecipients,
			DisablePipelining:    sp.DisablePipelining,
			DisableChunking:      sp.DisableChunking,
			Pool:                 sp.Pool.PoolConfig(),
		}
		switch {
		case implicit:
			t.Security = transport.ImplicitTLS
			if sp.Security != nil && *sp.Security != transport.ImplicitTLS {
				return nil, p.Errorf("security", "kind smtps always speaks TLS from the start; use kind smtp for %s", *sp.Security)
			}
		case sp.Security != nil:
			t.Security = *sp.Security
		}
		if err := common(p, network, host, sp.TLS, sp.Dialer, sp.Auth, &t.TLSConfig, &t.Dialer, &t.Auth); err != nil {
			return nil, err
		}
		return t, nil
	}
}

// lmtpParams are the keys of the lmtp kind.
type lmtpParams struct {
	Network           string              `yaml:"network"`
	Address           string              `yaml:"address"`
	Security          *transport.Security `yaml:"security"`
	LocalName         string              `yaml:"local_name"`
	TLS               *TLS                `yaml:"tls"`
	Dialer            *Dialer             `yaml:"dialer"`
	Auth              *Auth               `yaml:"auth"`
	Pool              *Pool               `yaml:"pool"`
	DisablePipelining bool                `yaml:"disable_pipelining"`
}

func newLMTP(p *Params) (transport.Transport, error) {
	var lp lmtpParams
	if err := p.Decode(&lp); err != nil {
		return nil, err
	}
	network, host, err := endpoint(p, lp.Network, lp.Address)
	if err != nil {
		return nil, err
	}
	if network == "tcp" {
		if _, port, _ := net.SplitHostPort(lp.Address); port == "25" || port == "smtp" {
			return nil, p.Errorf("address", "LMTP must not be used on port 25 (RFC 2033 section 1)")
		}
	}
	t := &transport.LMTP{
		Network:           network,
		Addr:              lp.Address,
		LocalName:         lp.LocalName,
		DisablePipelining: lp.DisablePipelining,
		Pool:              lp.Pool.PoolConfig(),
	}
	if lp.Security != nil {
		switch *lp.Security {
		case transport.Plaintext:
		case transport.StartTLS:
			t.RequireTLS = true
		default:
			return nil, p.Errorf("security", "LMTP takes none or starttls, not %s", *lp.Security)
		}
	}
	if err := common(p, network, host, lp.TLS, lp.Dialer, lp.Auth, &t.TLSConfig, &t.Dialer, &t.Auth); err != nil {
		return nil, err
	}
	return t, nil
}

// endpoint checks the network and address keys and returns the network
// ("tcp" or "unix") and the host the address names (the socket path for
// "unix").
func endpoint(p *Params, network, address string) (string, string, error) {
	if address == "" {
		return "", "", p.Errorf("address", "required: host:port, or the path of a Unix socket")
	}
	switch network {
	case "":
		network = "tcp"
		if strings.HasPrefix(address, "/") || strings.HasPrefix(address, "@") {
			network = "unix"
		}
	case "tcp", "unix":
	default:
		return "", "", p.Errorf("network", "want tcp or unix, not %q", network)
	}
	if network == "unix" {
		return network, address, nil
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil || host == "" || port == "" {
		return "", "", p.Errorf("address", "want host:port, such as smtp.example.org:587, not %q", address)
	}
	return network, host, nil
}

// common applies the tls, dialer and auth blocks, which were checked and
// loaded when they were decoded.
func common(p *Params, network, host string, tb *TLS, db *Dialer, ab *Auth,
	tlsOut **tls.Config, dialOut *dialer.Dialer, authOut *auth.Authenticator) error {
	var err error
	if *tlsOut, err = tb.Config(); err != nil {
		return p.wrap("tls", err)
	}
	if db != nil && network == "unix" && (db.SourceAddress != "" || db.SOCKS5 != "") {
		return p.Errorf("dialer", "source_address and socks5 apply to TCP, not to a Unix socket")
	}
	if *dialOut, err = db.Dialer(); err != nil {
		return p.wrap("dialer", err)
	}
	if *authOut, err = ab.Authenticator(host); err != nil {
		return p.wrap("auth", err)
	}
	return nil
}

// failoverParams are the keys of the failover kind.
type failoverParams struct {
	Members []*Params `yaml:"members"`
}

func newFailover(p *Params) (transport.Transport, error) {
	var fp failoverParams
	if err := p.Decode(&fp); err != nil {
		return nil, err
	}
	if len(fp.Members) == 0 {
		return nil, p.Errorf("members", "required: a list of at least one transport, tried in order")
	}
	ts := make([]transport.Transport, len(fp.Members))
	for i, m := range fp.Members {
		t, err := m.Transport()
		if err != nil {
			return nil, err
		}
		ts[i] = t
	}
	return transport.Failover(ts...), nil
}

// sendmailParams are the keys of the sendmail kind.
type sendmailParams struct {
	Path string   `yaml:"path"`
	Args []string `yaml:"args"`
}

func newSendmail(p *Params) (transport.Transport, error) {
	var sp sendmailParams
	if err := p.Decode(&sp); err != nil {
		return nil, err
	}
	path := sp.Path
	if strings.Contains(path, "/") {
		path = p.Path(path)
	}
	return &transport.Sendmail{Path: path, Args: sp.Args}, nil
}
