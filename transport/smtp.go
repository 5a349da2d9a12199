package transport

import (
	"context"
	"crypto/tls"
	"io"
	"net"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/dialer"
	"github.com/mailwire/mailwire/envelope"
)

// SMTP is a Transport that submits or relays mail over SMTP (RFC 5321,
// RFC 6409), in clear, with STARTTLS (RFC 3207) or over implicit TLS
// (RFC 8314). It pipelines commands (RFC 2920) when the server offers
// PIPELINING.
//
// Its zero value is not usable: set Addr. An SMTP is safe for concurrent use
// by multiple goroutines; do not modify its fields after the first Send.
type SMTP struct {
	// Network is "tcp" (the default) or "unix".
	Network string
	// Addr is the server's "host:port", or a socket path for "unix".
	Addr string
	// Security is how the connection is protected. The zero value, StartTLS,
	// requires STARTTLS.
	Security Security
	// TLSConfig configures TLS. nil uses the system roots. ServerName
	// defaults to Addr's host; certificate verification is on unless the
	// config turns it off. MinVersion defaults to TLS 1.2.
	TLSConfig *tls.Config
	// Dialer opens connections; nil uses a net.Dialer with a 30-second
	// connect timeout.
	Dialer dialer.Dialer
	// Auth, if not nil, authenticates each new connection after EHLO and
	// TLS; see package auth.
	Auth auth.Authenticator
	// LocalName is the name sent with EHLO or HELO; "" uses the machine's
	// host name if it is fully qualified, else the connection's local
	// address as an address literal such as "[192.0.2.1]", as smtplib does.
	LocalName string
	// Debug, if not nil, receives a transcript of each session, each line
	// prefixed with "C: " or "S: ". AUTH payloads and SASL challenges are
	// redacted and message content is summarised.
	Debug io.Writer
	// RequireAllRecipients makes a transaction all-or-nothing: if any
	// recipient is refused, the transaction is reset and nothing is sent.
	// By default the message goes to the accepted recipients, as smtplib's
	// sendmail does.
	RequireAllRecipients bool
	// DisablePipelining stops the transport from pipelining commands even
	// when the server offers PIPELINING (RFC 2920).
	DisablePipelining bool
	// DisableChunking stops the transport from using BDAT even when the
	// server offers CHUNKING (RFC 3030).
	DisableChunking bool
	// Pool configures the reuse of connections across Sends; the zero value
	// keeps a few idle connections, as net/http's Transport does. Call
	// CloseIdleConnections or Close when done with the transport.
	Pool PoolConfig

	pools poolSlot
}

var (
	_ Transport  = (*SMTP)(nil)
	_ IdleCloser = (*SMTP)(nil)
)

func (t *SMTP) config() *sessionConfig {
	host := t.Addr
	if t.Network != "unix" {
		if h, _, err := net.SplitHostPort(t.Addr); err == nil {
			host = h
		}
	}
	return &sessionConfig{
		network:      t.Network,
		addr:         t.Addr,
		host:         host,
		security:     t.Security,
		tlsConfig:    t.TLSConfig,
		dialer:       t.Dialer,
		auth:         t.Auth,
		localName:    t.LocalName,
		debug:        t.Debug,
		requireAll:   t.RequireAllRecipients,
		noPipelining: t.DisablePipelining,
		noChunking:   t.DisableChunking,
	}
}

// Dial opens a session with the server: it connects, reads the greeting,
// says EHLO, starts TLS as Security says and authenticates if Auth is set.
// The returned Conn sends any number of messages and session commands; the
// caller must Close it.
func (t *SMTP) Dial(ctx context.Context) (*Conn, error) {
	return dial(ctx, t.config())
}

// Send delivers msg over a pooled connection (a new one when none is idle,
// or when pooling is disabled). See [Transport] for the contract.
// Concurrent Sends use separate connections, at most Pool.MaxConns of them.
func (t *SMTP) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*Result, error) {
	return t.getPool().send(ctx, env, msg)
}

func (t *SMTP) getPool() *pool { return t.pools.get(t.config(), t.Pool) }

// CloseIdleConnections closes the transport's idle connections with QUIT.
// Connections in use are not interrupted.
func (t *SMTP) CloseIdleConnections() { t.pools.closeIdle(false) }

// Close closes the idle connections and makes further Sends and SendBatches
// fail with ErrTransportClosed, pooling disabled or not; connections in use
// are closed when their Send ends.
func (t *SMTP) Close() error {
	t.pools.closeIdle(true)
	return nil
}
