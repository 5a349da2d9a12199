package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"io"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/dialer"
	"github.com/mailwire/mailwire/envelope"
)

// SMTP is a Transport that submits or relays mail over SMTP (RFC 5321,
// RFC 6409), in clear, with STARTTLS (RFC 3207) or over implicit TLS
// (RFC 8314).
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
	// Auth, if not nil, authenticates each new connection after EHLO and TLS.
	Auth auth.Authenticator
	// LocalName is the name sent with EHLO or HELO; "" uses the machine's
	// fully qualified domain name, as smtplib does, or "localhost" if it has
	// none.
	LocalName string
	// Debug, if not nil, receives a transcript of the session, each line
	// prefixed with "C: " or "S: ". AUTH payloads are redacted.
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
}

var _ Transport = (*SMTP)(nil)

// Send delivers msg over a new connection. See [Transport] for the contract.
func (t *SMTP) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*Result, error) {
	return nil, errors.ErrUnsupported
}
