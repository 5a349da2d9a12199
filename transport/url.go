package transport

import (
	"fmt"
	"net"
	"net/url"
)

// FromURL returns the transport that a URL names:
//
//	smtp://host[:port]          SMTP, STARTTLS required (port 25 by default)
//	smtp://host:587?tls=opportunistic
//	smtp://host:25?tls=none     SMTP in clear
//	submission://host[:port]    SMTP with STARTTLS required, port 587 by default
//	smtps://host[:port]         SMTP over implicit TLS (port 465 by default)
//	lmtp:///path/to/socket      LMTP over a Unix socket
//	lmtp://host:port            LMTP over TCP (?tls=starttls to require TLS)
//
// The result is an *SMTP or an *LMTP with its other fields zero; set TLS,
// authentication and debugging on it before the first Send. A URL with a
// user name or password is refused: credentials do not belong in URLs,
// which end up in logs and process listings.
func FromURL(rawURL string) (Transport, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("transport: bad URL: %w", err)
	}
	if u.User != nil {
		return nil, fmt.Errorf("transport: URL %s://%s: credentials in URLs are not accepted; configure authentication separately", u.Scheme, u.Host)
	}
	q := u.Query()
	for k := range q {
		if k != "tls" {
			return nil, fmt.Errorf("transport: URL parameter %q not recognised", k)
		}
	}
	tlsParam := q.Get("tls")
	hostPort := func(def string) (string, error) {
		if u.Host == "" {
			return "", fmt.Errorf("transport: URL %q has no host", rawURL)
		}
		if u.Port() != "" {
			return u.Host, nil
		}
		if def == "" {
			return "", fmt.Errorf("transport: URL %q needs a port", rawURL)
		}
		return net.JoinHostPort(u.Hostname(), def), nil
	}
	switch u.Scheme {
	case "smtp", "submission", "smtps":
		if u.Path != "" && u.Path != "/" {
			return nil, fmt.Errorf("transport: URL %q: unexpected path", rawURL)
		}
		def := map[string]string{"smtp": "25", "submission": "587", "smtps": "465"}[u.Scheme]
		addr, err := hostPort(def)
		if err != nil {
			return nil, err
		}
		t := &SMTP{Addr: addr}
		if u.Scheme == "smtps" {
			t.Security = ImplicitTLS
			if tlsParam != "" && tlsParam != "tls" && tlsParam != "implicit" {
				return nil, fmt.Errorf("transport: smtps URL with tls=%s", tlsParam)
			}
			return t, nil
		}
		if tlsParam != "" {
			if err := t.Security.UnmarshalText([]byte(tlsParam)); err != nil {
				return nil, err
			}
		}
		return t, nil
	case "lmtp":
		t := &LMTP{}
		switch {
		case u.Host == "" && u.Path != "":
			t.Network, t.Addr = "unix", u.Path
		default:
			addr, err := hostPort("")
			if err != nil {
				return nil, err
			}
			t.Network, t.Addr = "tcp", addr
		}
		switch tlsParam {
		case "", "none":
		case "starttls":
			t.RequireTLS = true
		default:
			return nil, fmt.Errorf("transport: lmtp URL with tls=%s (want none or starttls)", tlsParam)
		}
		if _, err := t.config(); err != nil {
			return nil, err
		}
		return t, nil
	}
	return nil, fmt.Errorf("transport: unknown URL scheme %q (want smtp, submission, smtps or lmtp)", u.Scheme)
}
