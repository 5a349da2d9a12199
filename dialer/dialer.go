// Package dialer opens the raw network connections that transports speak
// SMTP and LMTP over. TLS is not its job: transports do the handshake
// themselves, so that implicit TLS and STARTTLS follow the same rules.
package dialer

import (
	"context"
	"net"
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
