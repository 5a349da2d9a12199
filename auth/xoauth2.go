package auth

import (
	"context"
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"
)

func init() { Register("XOAUTH2", XOAUTH2) }

var _ NewFunc = XOAUTH2

// XOAUTH2 is the [NewFunc] of the XOAUTH2 mechanism that Google and
// Microsoft document for OAuth 2.0; it has no RFC, and Microsoft's servers
// offer it rather than OAUTHBEARER. It calls Credentials.Token once and sends
// "user={Username}^Aauth=Bearer {token}^A^A" as the initial response. When
// the server refuses the token it sends a JSON error as a challenge; the
// client answers it with an empty response, as both providers require, and
// the server then ends the exchange with its failure reply.
//
// The token is a bearer credential: a [Config] applies the same rule as for
// PLAIN. It needs Username and Token and cannot carry an Identity other than
// Username.
func XOAUTH2(ctx context.Context, c Credentials, info ServerInfo) (sasl.Client, error) {
	if err := c.checkFor(info); err != nil {
		return nil, err
	}
	if err := xoauth2Usable(c, info); err != nil {
		return nil, err
	}
	if strings.ContainsRune(c.Username, '\x01') {
		return nil, fmt.Errorf("%w: XOAUTH2: username contains a control character", ErrMalformedCredentials)
	}
	tok, err := c.token(ctx, "XOAUTH2")
	if err != nil {
		return nil, err
	}
	return &xoauth2Client{user: c.Username, token: tok}, nil
}

func xoauth2Usable(c Credentials, _ ServerInfo) error {
	switch {
	case c.Token == nil:
		return unusable("XOAUTH2", "no token source")
	case c.Username == "":
		return unusable("XOAUTH2", "no username")
	}
	return noAuthzid("XOAUTH2", c)
}

type xoauth2Client struct {
	user, token string
	refused     bool
}

func (a *xoauth2Client) Start() (string, []byte, error) {
	ir := "user=" + a.user + "\x01auth=Bearer " + a.token + "\x01\x01"
	return "XOAUTH2", []byte(ir), nil
}

func (a *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	if a.refused {
		return nil, unexpectedChallenge("XOAUTH2")
	}
	// The only challenge is the server's error report.
	a.refused = true
	return []byte{}, nil
}
