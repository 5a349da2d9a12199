package dialer

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/proxy"
)

// Proxy returns a Dialer that connects through the SOCKS5 proxy (RFC 1928)
// named by u, reaching the proxy itself with forward (nil means [Default]()).
//
// u has the scheme "socks5" or "socks5h", a host, an optional port (1080 if
// none) and optional user information: "socks5://user:password@proxy:1080"
// authenticates with a user name and password (RFC 1929). With either scheme
// the destination's host name is sent to the proxy, which resolves it; the
// local resolver is never asked. Only TCP destinations ("tcp", "tcp4",
// "tcp6") can be dialed through a proxy.
//
// The returned Dialer honours ctx while it connects to the proxy, during the
// SOCKS handshake and while the proxy connects to the destination. Errors
// name the proxy by host and port only, never with the credentials.
func Proxy(u *url.URL, forward Dialer) (Dialer, error) {
	if u == nil {
		return nil, errors.New("dialer: nil proxy URL")
	}
	switch strings.ToLower(u.Scheme) {
	case "socks5", "socks5h":
	default:
		return nil, errors.New("dialer: unsupported proxy scheme " + strconv.Quote(u.Scheme) + " (want socks5 or socks5h)")
	}
	host := u.Hostname()
	if host == "" {
		return nil, errors.New("dialer: proxy URL has no host")
	}
	port := u.Port()
	if port == "" {
		port = "1080"
	}
	var auth *proxy.Auth
	if u.User != nil {
		user := u.User.Username()
		password, hasPassword := u.User.Password()
		switch {
		case user != "":
			auth = &proxy.Auth{User: user, Password: password}
		case hasPassword:
			return nil, errors.New("dialer: proxy URL has a password but no user name")
		}
	}
	if auth != nil {
		if len(auth.User) > 255 || len(auth.Password) > 255 {
			return nil, errors.New("dialer: proxy user name or password longer than 255 bytes")
		}
	}
	if forward == nil {
		forward = Default()
	}
	d, err := proxy.SOCKS5("tcp", net.JoinHostPort(host, port), auth, forwardDialer{forward})
	if err != nil {
		return nil, err
	}
	cd, ok := d.(proxy.ContextDialer)
	if !ok {
		// x/net/proxy's SOCKS5 dialer has always had DialContext; refuse
		// rather than fall back to a dial that ignores ctx.
		return nil, errors.New("dialer: SOCKS5 dialer does not support contexts")
	}
	return &socksDialer{d: cd}, nil
}

// socksDialer makes the errors of x/net/proxy's SOCKS5 dialer report the
// caller's cancellation. That dialer aborts a stalled handshake by moving the
// connection's deadline into the past, so the error it returns is an I/O
// timeout; callers (and the transports' error classification) must see
// context.Canceled or context.DeadlineExceeded instead.
type socksDialer struct {
	d proxy.ContextDialer
}

func (s *socksDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := s.d.DialContext(ctx, network, address)
	if err == nil {
		return c, nil
	}
	cerr := ctx.Err()
	if cerr == nil {
		// The SOCKS dialer also sets ctx's deadline on the connection, and
		// the connection's timer can fire just before the context's.
		var ne net.Error
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) && errors.As(err, &ne) && ne.Timeout() {
			cerr = context.DeadlineExceeded
		}
	}
	if cerr != nil && !errors.Is(err, cerr) {
		var oe *net.OpError
		if errors.As(err, &oe) {
			e := *oe
			e.Err = cerr
			return nil, &e
		}
		return nil, cerr
	}
	return nil, err
}

// forwardDialer gives a Dialer the Dial method x/net/proxy requires. proxy
// uses DialContext whenever it exists, so Dial is only a fallback.
type forwardDialer struct{ d Dialer }

func (f forwardDialer) Dial(network, address string) (net.Conn, error) {
	return f.d.DialContext(context.Background(), network, address)
}

func (f forwardDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return f.d.DialContext(ctx, network, address)
}
