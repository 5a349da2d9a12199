package config

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/dialer"
	"github.com/mailwire/mailwire/transport"
)

// TLS is the tls block of a transport: how the TLS layer is configured.
// A transport kind of another package can take one in its parameters; it
// is checked and its files are loaded when it is decoded.
type TLS struct {
	// CAFile is a PEM file of the certificate authorities to trust instead
	// of the system's.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its private
	// key, sent when the server asks for one (SASL EXTERNAL uses it).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// MinVersion is the lowest TLS version accepted, "1.2" or "1.3";
	// the transports' default is 1.2.
	MinVersion TLSVersion `yaml:"min_version"`
	// ServerName is the name the server's certificate is verified against
	// (and sent with SNI); the default is the host of the address.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify turns certificate verification off. Anyone on the
	// path can then read and change the session, credentials included:
	// for tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`

	loaded *tls.Config
}

// Config returns the *tls.Config the block describes, or nil if the block
// sets nothing. Each call returns a new copy.
func (t *TLS) Config() (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	if t.CAFile == "" && t.CertFile == "" && t.KeyFile == "" && t.MinVersion == 0 && t.ServerName == "" && !t.InsecureSkipVerify {
		return nil, nil
	}
	if t.loaded == nil {
		c, err := t.load()
		if err != nil {
			return nil, err
		}
		t.loaded = c
	}
	return t.loaded.Clone(), nil
}

func (t *TLS) check(p *Params) error {
	t.CAFile, t.CertFile, t.KeyFile = p.Path(t.CAFile), p.Path(t.CertFile), p.Path(t.KeyFile)
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		return p.Errorf("cert_file", "needs key_file too")
	case t.KeyFile != "" && t.CertFile == "":
		return p.Errorf("key_file", "needs cert_file too")
	}
	c := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: uint16(t.MinVersion)}
	if p.d.check {
		// Parse checks the file; the certificates are read when the profile is built.
		t.loaded = c
		return nil
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return p.Errorf("ca_file", "%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return p.Errorf("ca_file", "no PEM certificate in %s", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return p.Errorf("cert_file", "loading %s and %s: %v", t.CertFile, t.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	t.loaded = c
	return nil
}

// load builds the configuration of a TLS block that was not decoded.
func (t *TLS) load() (*tls.Config, error) {
	p := &Params{d: &decoder{}}
	if err := t.check(p); err != nil {
		return nil, err
	}
	return t.loaded, nil
}

// TLSVersion is a TLS protocol version written "1.2" or "1.3". Earlier
// versions are refused: RFC 8996 deprecates them. Its zero value means the
// transport's default.
type TLSVersion uint16

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *TLSVersion) UnmarshalText(b []byte) error {
	switch strings.TrimPrefix(strings.ToLower(string(b)), "tls") {
	case "1.2":
		*v = tls.VersionTLS12
	case "1.3":
		*v = tls.VersionTLS13
	default:
		return fmt.Errorf("unsupported TLS version %q (want 1.2 or 1.3)", b)
	}
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (v TLSVersion) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// String returns "1.2", "1.3", or "" for the zero value.
func (v TLSVersion) String() string {
	switch v {
	case 0:
		return ""
	case tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS13:
		return "1.3"
	}
	return tls.VersionName(uint16(v))
}

// Dialer is the dialer block of a transport: how connections are opened.
type Dialer struct {
	// Timeout bounds the TCP connection, DNS lookup included; 0 means
	// dialer.DefaultTimeout (30 seconds).
	Timeout time.Duration `yaml:"timeout"`
	// SourceAddress is the local IP address to connect from.
	SourceAddress string `yaml:"source_address"`
	// SOCKS5 is the URL of a SOCKS5 proxy to connect through,
	// "socks5://host:port" or "socks5h://host:port", without credentials.
	SOCKS5 string `yaml:"socks5"`
	// SOCKS5Username and SOCKS5Password authenticate to the proxy.
	SOCKS5Username string `yaml:"socks5_username"`
	SOCKS5Password Secret `yaml:"socks5_password"`

	built dialer.Dialer
}

// Dialer returns the dialer the block describes.
func (d *Dialer) Dialer() (dialer.Dialer, error) {
	if d == nil {
		return nil, nil
	}
	if d.built == nil {
		if err := d.check(&Params{d: &decoder{}}); err != nil {
			return nil, err
		}
	}
	return d.built, nil
}

func (d *Dialer) check(p *Params) error {
	if d.Timeout < 0 {
		return p.Errorf("timeout", "must not be negative")
	}
	base := dialer.Default()
	if d.Timeout > 0 {
		base.Timeout = d.Timeout
	}
	if d.SourceAddress != "" {
		ip := net.ParseIP(d.SourceAddress)
		if ip == nil {
			return p.Errorf("source_address", "%q is not an IP address", d.SourceAddress)
		}
		base.LocalAddr = &net.TCPAddr{IP: ip}
	}
	if d.SOCKS5 == "" {
		switch {
		case d.SOCKS5Username != "":
			return p.Errorf("socks5_username", "needs socks5")
		case d.SOCKS5Password.IsSet():
			return p.Errorf("socks5_password", "needs socks5")
		}
		d.built = base
		return nil
	}
	u, err := url.Parse(d.SOCKS5)
	if err != nil || u.Host == "" {
		return p.Errorf("socks5", "want a URL such as socks5://127.0.0.1:1080")
	}
	if u.User != nil {
		return p.Errorf("socks5", "credentials do not belong in the URL: use socks5_username and socks5_password_env or socks5_password_file")
	}
	if d.SOCKS5Password.IsSet() && d.SOCKS5Username == "" {
		return p.Errorf("socks5_password", "needs socks5_username")
	}
	if d.SOCKS5Username != "" {
		u.User = url.UserPassword(d.SOCKS5Username, d.SOCKS5Password.Value())
	}
	pd, err := dialer.Proxy(u, base)
	if err != nil {
		return p.Errorf("socks5", "%v", err)
	}
	d.built = pd
	return nil
}

// Auth is the auth block of a transport: SASL authentication (package
// auth). Its mechanisms are looked up when it is decoded, and its secrets
// read.
type Auth struct {
	// Mechanism is the one mechanism to use, such as PLAIN or XOAUTH2.
	Mechanism string `yaml:"mechanism"`
	// Mechanisms are the mechanisms allowed, most preferred first; the
	// strongest one the server offers is used. Neither Mechanism nor
	// Mechanisms means auth.DefaultPreference.
	Mechanisms []string `yaml:"mechanisms"`
	// Identity is the authorization identity (authzid); usually empty.
	Identity string `yaml:"identity"`
	// Username is the authentication identity.
	Username string `yaml:"username"`
	// Password is the password of the password mechanisms.
	Password Secret `yaml:"password"`
	// Token is the OAuth 2.0 bearer token of XOAUTH2 and OAUTHBEARER. A
	// token_file is read again for each connection, so a token that
	// another process refreshes is picked up.
	Token Secret `yaml:"token"`
	// AllowInsecure allows credentials over an unencrypted TCP
	// connection (auth.Config.AllowInsecure).
	AllowInsecure bool `yaml:"allow_insecure"`
}

// noCredentialMechanisms send no password or token.
var noCredentialMechanisms = map[string]bool{"EXTERNAL": true, "ANONYMOUS": true}

func (a *Auth) check(p *Params) error {
	if a.Mechanism != "" && a.Mechanisms != nil {
		return p.Errorf("mechanisms", "mechanism and mechanisms are both given; use one")
	}
	if a.Mechanisms != nil && len(a.Mechanisms) == 0 {
		return p.Errorf("mechanisms", "empty list allows no mechanism")
	}
	names := a.names()
	needsCredential := true
	for i, m := range names {
		if _, err := auth.Lookup(m); err != nil {
			key := "mechanism"
			if a.Mechanisms != nil {
				key = fmt.Sprintf("mechanisms[%d]", i)
			}
			return p.wrap(key, &unknownNameError{what: "mechanism", name: m, sentinel: auth.ErrUnknownMechanism})
		}
		if noCredentialMechanisms[strings.ToUpper(m)] {
			needsCredential = false
		}
	}
	if needsCredential && !a.Password.IsSet() && !a.Token.IsSet() {
		return p.Errorf("", "needs password_env or password_file, or token_env or token_file")
	}
	if a.Password.IsSet() && a.Username == "" {
		return p.Errorf("username", "required with a password")
	}
	// Refuse CR, LF and NUL now, naming the key but not the value.
	for _, f := range []struct {
		key string
		c   auth.Credentials
	}{
		{"identity", auth.Credentials{Identity: a.Identity}},
		{"username", auth.Credentials{Username: a.Username}},
		{a.Password.key("password"), auth.Credentials{Password: a.Password.Value()}},
	} {
		if err := f.c.Validate(); err != nil {
			return p.wrap(f.key, err)
		}
	}
	return nil
}

// names returns the mechanisms the block allows; nil for the default.
func (a *Auth) names() []string {
	if a.Mechanism != "" {
		return []string{a.Mechanism}
	}
	return a.Mechanisms
}

// Authenticator returns the auth.Config the block describes, its
// credentials bound to host (auth.Credentials.Host) unless host is empty.
func (a *Auth) Authenticator(host string) (auth.Authenticator, error) {
	if a == nil {
		return nil, nil
	}
	cfg := auth.Config{
		Credentials: auth.Credentials{
			Identity: a.Identity,
			Username: a.Username,
			Password: a.Password.Value(),
			Host:     host,
		},
		Mechanisms:    a.names(),
		AllowInsecure: a.AllowInsecure,
	}
	if a.Token.IsSet() {
		tok := a.Token
		cfg.Token = func(ctx context.Context) (string, error) {
			v, err := tok.reread()
			if err != nil {
				return "", errors.New("config: reading the token: " + err.Error())
			}
			return v, nil
		}
	}
	return cfg, nil
}

// Pool is the pool block of an SMTP or LMTP transport: how connections
// are kept and reused between Sends (transport.PoolConfig). A key that is
// absent keeps the transport's default.
type Pool struct {
	// MaxConns caps the connections open at once, busy and idle; Sends
	// beyond it wait. 0 means no cap (the default).
	MaxConns *int `yaml:"max_conns"`
	// MaxIdle is the number of idle connections kept for reuse
	// (default transport.DefaultMaxIdleConns); 0 turns pooling off, so
	// that each Send opens its own connection and closes it.
	MaxIdle *int `yaml:"max_idle"`
	// IdleTimeout closes a connection idle for longer (default
	// transport.DefaultIdleTimeout); it must be positive.
	IdleTimeout *time.Duration `yaml:"idle_timeout"`
	// MaxMessagesPerConn closes a connection after that many transactions
	// (default transport.DefaultMaxMessagesPerConn); 0 means no limit.
	MaxMessagesPerConn *int `yaml:"max_messages_per_conn"`
}

func (p *Pool) check(ps *Params) error {
	for _, f := range []struct {
		key string
		v   *int
	}{
		{"max_conns", p.MaxConns},
		{"max_idle", p.MaxIdle},
		{"max_messages_per_conn", p.MaxMessagesPerConn},
	} {
		if f.v != nil && *f.v < 0 {
			return ps.Errorf(f.key, "must not be negative")
		}
	}
	if p.IdleTimeout != nil && *p.IdleTimeout <= 0 {
		return ps.Errorf("idle_timeout", "must be positive")
	}
	if p.MaxConns != nil && p.MaxIdle != nil && *p.MaxConns > 0 && *p.MaxIdle > *p.MaxConns {
		return ps.Errorf("max_idle", "%d is more than max_conns (%d)", *p.MaxIdle, *p.MaxConns)
	}
	return nil
}

// PoolConfig returns the transport.PoolConfig the block describes; a nil
// Pool gives the zero PoolConfig, the transports' defaults.
func (p *Pool) PoolConfig() transport.PoolConfig {
	var pc transport.PoolConfig
	if p == nil {
		return pc
	}
	if p.MaxConns != nil {
		pc.MaxConns = *p.MaxConns
	}
	if p.MaxIdle != nil {
		pc.MaxIdleConns = *p.MaxIdle
		if pc.MaxIdleConns == 0 {
			pc.MaxIdleConns = -1
		}
	}
	if p.IdleTimeout != nil {
		pc.IdleTimeout = *p.IdleTimeout
	}
	if p.MaxMessagesPerConn != nil {
		pc.MaxMessagesPerConn = *p.MaxMessagesPerConn
		if pc.MaxMessagesPerConn == 0 {
			pc.MaxMessagesPerConn = -1
		}
	}
	return pc
}
