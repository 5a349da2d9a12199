package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/dialer"
	"github.com/mailwire/mailwire/envelope"
)

// LMTP is a Transport that delivers over LMTP (RFC 2033), usually to a
// local delivery agent such as Dovecot or Cyrus over a Unix socket.
//
// Unlike SMTP, the server answers the end of the data once per accepted
// recipient, so a message can be delivered to some recipients and refused
// (for example, over quota) for others: each gets its own outcome in the
// Result, and a partial success is never reported as a whole failure.
//
// Its zero value is not usable: set Addr. An LMTP is safe for concurrent use
// by multiple goroutines; do not modify its fields after the first Send.
type LMTP struct {
	// Network is "unix" or "tcp". If empty, an Addr starting with "/" or
	// "@" (a Linux abstract socket) means "unix", anything else "tcp".
	Network string
	// Addr is a socket path or "host:port". RFC 2033 forbids LMTP on port
	// 25; such an address is refused.
	Addr string
	// RequireTLS upgrades a TCP connection with STARTTLS and fails if the
	// server does not offer it. By default LMTP runs in clear, which is
	// what a local socket needs.
	RequireTLS bool
	// TLSConfig configures TLS when RequireTLS is set; as for SMTP.
	TLSConfig *tls.Config
	// Dialer opens connections; nil uses a net.Dialer with a 30-second
	// connect timeout.
	Dialer dialer.Dialer
	// Auth, if not nil, authenticates each new connection.
	Auth auth.Authenticator
	// LocalName is the name sent with LHLO; as for SMTP.
	LocalName string
	// Debug, if not nil, receives a transcript of each session; as for SMTP.
	Debug io.Writer
	// DisablePipelining stops the transport from pipelining MAIL and RCPT
	// even when the server offers PIPELINING.
	DisablePipelining bool
	// Pool configures the reuse of connections across Sends, as for SMTP.
	Pool PoolConfig

	pools poolSlot
}

var (
	_ Transport  = (*LMTP)(nil)
	_ IdleCloser = (*LMTP)(nil)
)

func (t *LMTP) config() (*sessionConfig, error) {
	network := t.Network
	if network == "" {
		network = "tcp"
		if strings.HasPrefix(t.Addr, "/") || strings.HasPrefix(t.Addr, "@") {
			network = "unix"
		}
	}
	host := t.Addr
	if network != "unix" {
		h, port, err := net.SplitHostPort(t.Addr)
		if err != nil {
			return nil, fmt.Errorf("transport: LMTP address %q: %w", t.Addr, err)
		}
		if n, err := strconv.Atoi(port); (err == nil && n == 25) || port == "smtp" {
			return nil, fmt.Errorf("transport: LMTP must not be used on port 25 (RFC 2033 section 1)")
		}
		host = h
	}
	sec := Plaintext
	if t.RequireTLS {
		sec = StartTLS
	}
	return &sessionConfig{
		network:      network,
		addr:         t.Addr,
		host:         host,
		security:     sec,
		tlsConfig:    t.TLSConfig,
		dialer:       t.Dialer,
		auth:         t.Auth,
		localName:    t.LocalName,
		debug:        t.Debug,
		lmtp:         true,
		noPipelining: t.DisablePipelining,
		noChunking:   true,
	}, nil
}

// Dial opens an LMTP session: it connects, reads the greeting and says
// LHLO. The caller must Close the returned Conn.
func (t *LMTP) Dial(ctx context.Context) (*Conn, error) {
	cfg, err := t.config()
	if err != nil {
		return nil, &OpError{Op: OpDial, Addr: t.Addr, Err: err}
	}
	return dial(ctx, cfg)
}

// Send delivers msg over a pooled connection, as [SMTP.Send] does. See
// [Transport] for the contract; each recipient's outcome comes from its own
// reply to the end of the data.
func (t *LMTP) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*Result, error) {
	cfg, err := t.config()
	if err != nil {
		oe := &OpError{Op: OpDial, Addr: t.Addr, Err: err}
		if env == nil {
			return nil, oe
		}
		res := newResult(env)
		(&tx{res: res}).failOpen(PermFailed, nil, oe)
		return res, oe
	}
	return t.getPool(cfg).send(ctx, env, msg)
}

func (t *LMTP) getPool(cfg *sessionConfig) *pool { return t.pools.get(cfg, t.Pool) }

// CloseIdleConnections closes the transport's idle connections.
func (t *LMTP) CloseIdleConnections() { t.pools.closeIdle(false) }

// Close closes the idle connections and makes further Sends and SendBatches
// fail with ErrTransportClosed, pooling disabled or not; connections in use
// are closed when their Send ends.
func (t *LMTP) Close() error {
	t.pools.closeIdle(true)
	return nil
}
