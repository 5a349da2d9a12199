// Package auth provides SASL authentication (RFC 4422, RFC 4954) for the
// SMTP and LMTP transports, on github.com/emersion/go-sasl's Client interface.
package auth

import (
	"context"
	"crypto/tls"
	"errors"

	"github.com/emersion/go-sasl"
)

// ServerInfo describes the session when AUTH is about to start, after EHLO
// and any TLS handshake.
type ServerInfo struct {
	// Host is the server's host name as configured (without the port).
	Host string
	// Mechanisms are the mechanisms the server advertised, upper case.
	Mechanisms []string
	// TLS is the state of the connection's TLS layer; nil if the connection
	// is not encrypted.
	TLS *tls.ConnectionState
	// Unix is true for a Unix-domain socket connection.
	Unix bool
}

// An Authenticator chooses the mechanism for one session and returns a new
// sasl.Client for one exchange. Transports call Start once per connection,
// after EHLO and any STARTTLS, and run the RFC 4954 exchange with the
// client it returns. Start must refuse (with an error wrapping ErrInsecure)
// rather than return a client that would send a credential over an
// unprotected connection the caller did not allow.
type Authenticator interface {
	Start(ctx context.Context, info ServerInfo) (sasl.Client, error)
}

// ErrInsecure is wrapped by the error an Authenticator returns when
// authenticating would expose a credential: the connection is neither
// encrypted nor a Unix socket, and the caller did not allow it.
var ErrInsecure = errors.New("auth: refusing to send credentials over an unencrypted connection")
