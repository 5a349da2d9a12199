package auth

import (
	"context"

	"github.com/emersion/go-sasl"
)

func init() { Register("EXTERNAL", External) }

var _ NewFunc = External

// External is the [NewFunc] of the EXTERNAL mechanism (RFC 4422 appendix
// A): the server authenticates the client by the certificate it presented
// in the TLS handshake, and the client only names the identity to act as
// (Identity; empty means the certificate's own). It needs a TLS connection
// on which a client certificate was sent (ServerInfo.ClientCert). It sends
// no secret; a [Config] uses it only when asked by name.
func External(_ context.Context, c Credentials, info ServerInfo) (sasl.Client, error) {
	if err := c.checkFor(info); err != nil {
		return nil, err
	}
	if err := externalUsable(c, info); err != nil {
		return nil, err
	}
	return sasl.NewExternalClient(c.Identity), nil
}

func externalUsable(_ Credentials, info ServerInfo) error {
	switch {
	case info.TLS == nil:
		return unusable("EXTERNAL", "no TLS")
	case !info.ClientCert:
		return unusable("EXTERNAL", "no TLS client certificate")
	}
	return nil
}
