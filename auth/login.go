package auth

import (
	"context"

	"github.com/emersion/go-sasl"
)

func init() { Register("LOGIN", Login) }

var _ NewFunc = Login

// Login is the [NewFunc] of the LOGIN mechanism (draft-murchison-sasl-login,
// never standardised). It answers the server's first challenge (normally
// "Username:") with Username and its second ("Password:") with Password; a
// third challenge is an error. It sends no initial response, the form all
// LOGIN servers expect. The password travels as in PLAIN, so the same safety rule
// applies; use LOGIN only for servers that offer nothing better, such as
// Office 365. It needs Username and Password and cannot carry an Identity
// other than Username.
func Login(_ context.Context, c Credentials, info ServerInfo) (sasl.Client, error) {
	if err := c.checkFor(info); err != nil {
		return nil, err
	}
	if err := loginUsable(c, info); err != nil {
		return nil, err
	}
	return &loginClient{user: c.Username, pass: c.Password}, nil
}

func loginUsable(c Credentials, _ ServerInfo) error {
	if err := needPassword("LOGIN", c); err != nil {
		return err
	}
	return noAuthzid("LOGIN", c)
}

type loginClient struct {
	user, pass string
	step       int
}

func (a *loginClient) Start() (string, []byte, error) {
	return "LOGIN", nil, nil
}

func (a *loginClient) Next(challenge []byte) ([]byte, error) {
	a.step++
	switch a.step {
	case 1:
		return []byte(a.user), nil
	case 2:
		return []byte(a.pass), nil
	}
	return nil, unexpectedChallenge("LOGIN")
}
