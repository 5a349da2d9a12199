// Package demotoken provides X-DEMO-TOKEN, a SASL mechanism made up for
// this example, and registers it with package auth under that name. A
// program enables it by importing the package; a configuration file then
// selects it by name:
//
//	import _ "github.com/mailwire/mailwire/examples/custom-auth/demotoken"
//
//	auth:
//	  mechanism: X-DEMO-TOKEN
//	  username: alice
//	  token_env: DEMO_TOKEN
//
// The exchange proves that the client holds a shared token without sending
// it: the client sends its user name, the server answers with a random
// challenge, and the client answers with the hex HMAC-SHA256 of the
// challenge keyed with the token.
//
//	C: AUTH X-DEMO-TOKEN YWxpY2U=            (alice)
//	S: 334 <base64 challenge>
//	C: <base64 hex HMAC-SHA256(token, challenge)>
//	S: 235 2.0.0 Authentication succeeded
package demotoken

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"github.com/emersion/go-sasl"

	"github.com/mailwire/mailwire/auth"
)

// Name is the mechanism's name.
const Name = "X-DEMO-TOKEN"

func init() { auth.Register(Name, New) }

var _ auth.NewFunc = New

// New is the auth.NewFunc of X-DEMO-TOKEN: it returns a client for one
// exchange, which needs Credentials.Username and Credentials.Token. It is
// called once per connection, so the token source may refresh the token.
func New(ctx context.Context, c auth.Credentials, _ auth.ServerInfo) (sasl.Client, error) {
	if err := c.Validate(); err != nil { // CR, LF or NUL in a field
		return nil, err
	}
	if c.Username == "" || c.Token == nil {
		return nil, errors.New("demotoken: X-DEMO-TOKEN needs a username and a token")
	}
	tok, err := c.Token(ctx)
	if err != nil {
		return nil, err // the token source's error, which must not hold the token
	}
	if tok == "" {
		return nil, errors.New("demotoken: empty token")
	}
	return &client{user: c.Username, key: []byte(tok)}, nil
}

// client is the state of one exchange.
type client struct {
	user     string
	key      []byte
	answered bool
}

// Start sends the user name as the initial response.
func (c *client) Start() (string, []byte, error) {
	return Name, []byte(c.user), nil
}

// Next answers the server's one challenge.
func (c *client) Next(challenge []byte) ([]byte, error) {
	if c.answered || len(challenge) == 0 {
		return nil, sasl.ErrUnexpectedServerChallenge
	}
	c.answered = true
	return []byte(Sign(c.key, challenge)), nil
}

// Sign returns the answer to challenge for key: the hex HMAC-SHA256 of
// the challenge keyed with the token. The server computes it too.
func Sign(key, challenge []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(challenge)
	return hex.EncodeToString(mac.Sum(nil))
}
