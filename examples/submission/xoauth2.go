package main

import (
	"bytes"
	"errors"

	"github.com/emersion/go-sasl"

	"github.com/mailwire/mailwire/transport/smtptest"
)

// xoauth2Server returns the server side of XOAUTH2 for the embedded server:
// it accepts the initial response "user=U^Aauth=Bearer T^A^A" when tokens
// maps U to T. A real provider checks the token with its authorization
// server; on a refusal it sends a JSON error as a challenge first.
func xoauth2Server(tokens map[string]string) smtptest.AuthMechanism {
	return func(r *smtptest.AuthRequest) sasl.Server {
		return &xoauth2{r: r, tokens: tokens}
	}
}

type xoauth2 struct {
	r      *smtptest.AuthRequest
	tokens map[string]string
	asked  bool
}

func (x *xoauth2) Next(response []byte) ([]byte, bool, error) {
	if response == nil && !x.asked {
		x.asked = true
		return []byte{}, false, nil // no initial response: ask for it
	}
	fields := bytes.Split(response, []byte{1})
	var user, token string
	for _, f := range fields {
		switch {
		case bytes.HasPrefix(f, []byte("user=")):
			user = string(f[len("user="):])
		case bytes.HasPrefix(f, []byte("auth=Bearer ")):
			token = string(f[len("auth=Bearer "):])
		}
	}
	want, ok := x.tokens[user]
	if !ok || token == "" || token != want {
		return nil, false, errors.New("invalid token")
	}
	x.r.Login(user)
	return nil, true, nil
}
