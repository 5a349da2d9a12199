// Package dialer opens the raw network connections that transports speak
// SMTP and LMTP over. TLS is not its job: transports do the handshake
// themselves, so that implicit TLS and STARTTLS follow the same rules.
//
// A *net.Dialer is already a [Dialer], and most settings belong there:
//
//   - the connect timeout is net.Dialer.Timeout ([Default] sets 30 seconds);
//   - the source address to bind is net.Dialer.LocalAddr, for example
//     &net.TCPAddr{IP: net.ParseIP("192.0.2.10")}, like smtplib's
//     source_address or Postfix's smtp_bind_address;
//   - TCP keep-alives are net.Dialer.KeepAlive and KeepAliveConfig.
//
// Unix-domain sockets (a local relay, Dovecot's LMTP socket) are the network
// "unix" with the socket's path as the address; *net.Dialer dials them too.
//
// This package adds what net.Dialer lacks: [Fixed], which always dials one
// address whatever the transport asks for, and [Proxy], which dials through
// a SOCKS5 proxy.
package dialer

import (
	"context"
	"net"
	"time"
)

// A Dialer opens raw network connections. *net.Dialer implements it: set its
// Timeout (connect timeout), LocalAddr (source address, like smtplib's
// source_address) and KeepAlive there. So do golang.org/x/net/proxy
// ContextDialers and the [Func], [Fixed] and [Proxy] dialers of this package.
//
// DialContext must honour ctx: cancellation aborts the dial.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Func adapts an ordinary function to the [Dialer] interface.
type Func func(ctx context.Context, network, address string) (net.Conn, error)

// DialContext calls f(ctx, network, address).
func (f Func) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return f(ctx, network, address)
}

var (
	_ Dialer = (*net.Dialer)(nil)
	_ Dialer = Func(nil)
)

// DefaultTimeout is the connect timeout of the dialer [Default] returns: 30
// seconds, the default of Postfix's smtp_connect_timeout. It bounds only the
// TCP connection (and the DNS lookup before it), not the SMTP greeting or
// the session; a context deadline bounds those. It is short on purpose: a
// mail server that does not accept a connection within 30 seconds is better
// treated as down, so that the next MX host or a later retry gets its turn,
// and the operating system's own limit (often more than two minutes on
// Linux) is too long to wait for each unreachable host.
const DefaultTimeout = 30 * time.Second

// Default returns a new *net.Dialer with a [DefaultTimeout] (30 second)
// connect timeout and Go's default TCP keep-alives. Each call returns a new
// dialer, so callers may set its LocalAddr or other fields.
func Default() *net.Dialer {
	return &net.Dialer{Timeout: DefaultTimeout}
}

// Fixed returns a Dialer that dials network and address with d, whatever
// network and address it is asked for. It points a transport at a relay on a
// Unix socket (Fixed("unix", "/run/relay.sock", nil)), or at a test server,
// while the transport keeps its configured host name for TLS verification and
// logs. If d is nil, Fixed uses [Default]().
func Fixed(network, address string, d Dialer) Dialer {
	if d == nil {
		d = Default()
	}
	return &fixed{network: network, address: address, d: d}
}

type fixed struct {
	network, address string
	d                Dialer
}

// DialContext dials f's own network and address; the arguments are ignored.
func (f *fixed) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	return f.d.DialContext(ctx, f.network, f.address)
}
