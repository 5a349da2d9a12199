package transport

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/mailwire/mailwire/envelope"
)

// FromURL returns the transport that a URL names:
//
//	smtp://host[:port]          SMTP, STARTTLS required (port 25 by default)
//	smtp://host:587?tls=opportunistic
//	smtp://host:25?tls=none     SMTP in clear
//	smtp://host?tls=smtps       SMTP over implicit TLS (port 465 by default)
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
	if u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("transport: URL %q: unexpected fragment or opaque part", rawURL)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("transport: URL %q: bad query: %w", rawURL, err)
	}
	for k, v := range q {
		if k != "tls" {
			return nil, fmt.Errorf("transport: URL parameter %q not recognised", k)
		}
		if len(v) != 1 || v[0] == "" {
			return nil, fmt.Errorf("transport: URL parameter tls must be given once, with a value")
		}
	}
	tlsParam := q.Get("tls")
	hostPort := func(def string) (string, error) {
		if u.Hostname() == "" {
			return "", fmt.Errorf("transport: URL %q has no host", rawURL)
		}
		port := u.Port()
		if port == "" {
			if def == "" {
				return "", fmt.Errorf("transport: URL %q needs a port", rawURL)
			}
			port = def
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("transport: URL %q: port %q is not a port number", rawURL, port)
		}
		return net.JoinHostPort(u.Hostname(), port), nil
	}
	switch u.Scheme {
	case "smtp", "submission", "smtps":
		if u.Path != "" && u.Path != "/" {
			return nil, fmt.Errorf("transport: URL %q: unexpected path", rawURL)
		}
		def := map[string]string{"smtp": "25", "submission": "587", "smtps": "465"}[u.Scheme]
		var sec Security
		if tlsParam != "" {
			if err := sec.UnmarshalText([]byte(tlsParam)); err != nil {
				return nil, err
			}
		}
		switch {
		case u.Scheme == "smtps" && tlsParam != "" && sec != ImplicitTLS:
			return nil, fmt.Errorf("transport: smtps URL with tls=%s", tlsParam)
		case u.Scheme == "smtps":
			sec = ImplicitTLS
		case sec == ImplicitTLS:
			def = "465"
		}
		addr, err := hostPort(def)
		if err != nil {
			return nil, err
		}
		return &SMTP{Addr: addr, Security: sec}, nil
	case "lmtp":
		t := &LMTP{}
		switch {
		case u.Host == "" && u.Path != "":
			if u.Path == "/" || strings.HasSuffix(u.Path, "/") {
				return nil, fmt.Errorf("transport: URL %q: the socket path names a directory", rawURL)
			}
			if envelope.CheckText(u.Path) != nil || strings.ContainsAny(u.Path, " ") {
				return nil, fmt.Errorf("transport: URL %q: control characters or spaces in the socket path", rawURL)
			}
			t.Network, t.Addr = "unix", u.Path
		default:
			if u.Path != "" && u.Path != "/" {
				return nil, fmt.Errorf("transport: URL %q: unexpected path after host:port", rawURL)
			}
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
