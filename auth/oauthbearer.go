package auth

import (
	"context"
	"strings"

	"github.com/emersion/go-sasl"
)

func init() { Register("OAUTHBEARER", OAuthBearer) }

var _ NewFunc = OAuthBearer

// OAuthBearer is the [NewFunc] of the OAUTHBEARER mechanism (RFC 7628). It
// calls Credentials.Token once and sends, in the initial response, the
// authorization identity (Identity, or Username when Identity is empty; it
// may be empty), the server's host name and the bearer token. When the
// server refuses the token it sends a JSON error as a challenge; the client
// answers with the single 0x01 byte RFC 7628 section 3.2.3 prescribes and
// the server then ends the exchange with its failure reply.
//
// The token is a bearer credential: a [Config] applies the same rule as for
// PLAIN. It needs Token.
func OAuthBearer(ctx context.Context, c Credentials, info ServerInfo) (sasl.Client, error) {
	if err := c.checkFor(info); err != nil {
		return nil, err
	}
	if err := oauthBearerUsable(c, info); err != nil {
		return nil, err
	}
	tok, err := c.token(ctx, "OAUTHBEARER")
	if err != nil {
		return nil, err
	}
	authzid := c.Identity
	if authzid == "" {
		authzid = c.Username
	}
	var b strings.Builder
	b.WriteString("n,")
	if authzid != "" {
		b.WriteString("a=")
		b.WriteString(saslName(authzid))
	}
	b.WriteString(",")
	if info.Host != "" && !strings.ContainsFunc(info.Host, isControl) {
		b.WriteString("\x01host=")
		b.WriteString(info.Host)
	}
	b.WriteString("\x01auth=Bearer ")
	b.WriteString(tok)
	b.WriteString("\x01\x01")
	return &oauthBearerClient{ir: b.String()}, nil
}

func oauthBearerUsable(c Credentials, _ ServerInfo) error {
	if c.Token == nil {
		return unusable("OAUTHBEARER", "no token source")
	}
	return nil
}

// saslName escapes "," and "=" as RFC 5801 section 4 requires for the
// authzid in a GS2 header.
func saslName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

type oauthBearerClient struct {
	ir      string
	refused bool
}

func (a *oauthBearerClient) Start() (string, []byte, error) {
	return "OAUTHBEARER", []byte(a.ir), nil
}

func (a *oauthBearerClient) Next(challenge []byte) ([]byte, error) {
	if a.refused {
		return nil, unexpectedChallenge("OAUTHBEARER")
	}
	// The only challenge is the server's error report (RFC 7628 section
	// 3.2.2); 0x01 asks the server to finish with its failure reply.
	a.refused = true
	return []byte{0x01}, nil
}
