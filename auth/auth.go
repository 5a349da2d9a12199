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
	// ClientCert is true if the TLS handshake sent a client certificate to
	// the server. The TLS connection state does not record this on the
	// client side, so the transport must: EXTERNAL is only usable when it is
	// true.
	ClientCert bool
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

// A Finisher is a sasl.Client that must check something after the server
// has accepted the exchange. SCRAM clients implement it: the server proves
// that it knows the password in its last message, and a server that replies
// 235 without that proof has not been authenticated.
//
// After a 2yz reply to AUTH, a transport must call Finish when the client
// implements Finisher, and treat a non-nil error as an authentication
// failure (the session should then be closed: the server may be an
// impostor).
type Finisher interface {
	Finish() error
}
