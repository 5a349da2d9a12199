package auth

import (
	"context"
	"unicode/utf8"

	"github.com/emersion/go-sasl"
)

func init() { Register("ANONYMOUS", Anonymous) }

var _ NewFunc = Anonymous

// Anonymous is the [NewFunc] of the ANONYMOUS mechanism (RFC 4505). It
// sends Username, which may be empty, as the trace information (an email
// address or an opaque string of at most 255 characters), and nothing
// secret, so a [Config] allows it on any connection. It is used only when
// asked by name.
func Anonymous(_ context.Context, c Credentials, info ServerInfo) (sasl.Client, error) {
	if err := c.checkFor(info); err != nil {
		return nil, err
	}
	if err := anonymousUsable(c, info); err != nil {
		return nil, err
	}
	return sasl.NewAnonymousClient(c.Username), nil
}

func anonymousUsable(c Credentials, _ ServerInfo) error {
	if utf8.RuneCountInString(c.Username) > 255 {
		return unusable("ANONYMOUS", "trace (Username) longer than 255 characters")
	}
	return nil
}
