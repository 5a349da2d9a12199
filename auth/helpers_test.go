package auth_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/emersion/go-sasl"
	"github.com/mailwire/mailwire/auth"
)

// tlsStateNoUnique is a TLS 1.2 connection state without channel binding
// data.
var tlsStateNoUnique = tls.ConnectionState{Version: tls.VersionTLS12, HandshakeComplete: true}

// tlsState returns a TLS 1.2 connection state with a tls-unique value,
// enough for SCRAM-SHA-256-PLUS, built without a handshake.
func tlsState() *tls.ConnectionState {
	return &tls.ConnectionState{
		Version:           tls.VersionTLS12,
		HandshakeComplete: true,
		TLSUnique:         []byte("0123456789ab"),
	}
}

// errServerRefused is what exchange returns when the server fails the
// exchange (an SMTP 535).
var errServerRefused = errors.New("server refused")

// exchange runs c against s the way an RFC 4954 transport would: the
// initial response goes with AUTH, each server challenge goes to c.Next, an
// error from c cancels, and a success calls Finish when c implements
// auth.Finisher. It returns the client's messages, for inspection.
func exchange(c sasl.Client, s sasl.Server) (sent [][]byte, err error) {
	_, resp, err := c.Start()
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	for round := 0; round < 10; round++ {
		if resp != nil {
			sent = append(sent, resp)
		}
		challenge, done, serr := s.Next(resp)
		if serr != nil {
			return sent, fmt.Errorf("%w: %v", errServerRefused, serr)
		}
		if done {
			if f, ok := c.(auth.Finisher); ok {
				return sent, f.Finish()
			}
			return sent, nil
		}
		resp, err = c.Next(challenge)
		if err != nil {
			return sent, err
		}
		if resp == nil {
			resp = []byte{}
		}
	}
	return sent, errors.New("too many rounds")
}

// start runs a NewFunc with a background context.
func start(f auth.NewFunc, c auth.Credentials, info auth.ServerInfo) (sasl.Client, error) {
	return f(context.Background(), c, info)
}

// staticToken returns a token source that always returns tok.
func staticToken(tok string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) { return tok, nil }
}
