package auth

import (
	"context"

	"github.com/emersion/go-sasl"
)

func init() { Register("PLAIN", Plain) }

var _ NewFunc = Plain

// Plain is the [NewFunc] of the PLAIN mechanism (RFC 4616). It sends
// Identity (optional), Username and Password in the initial response, in
// the clear inside the connection: a [Config] uses it only over TLS, a Unix
// socket, or with AllowInsecure. It needs Username and Password.
func Plain(_ context.Context, c Credentials, info ServerInfo) (sasl.Client, error) {
	if err := c.checkFor(info); err != nil {
		return nil, err
	}
	if err := plainUsable(c, info); err != nil {
		return nil, err
	}
	return sasl.NewPlainClient(c.Identity, c.Username, c.Password), nil
}

func plainUsable(c Credentials, _ ServerInfo) error {
	return needPassword("PLAIN", c)
}
