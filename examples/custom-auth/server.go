package main

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"errors"

	"github.com/emersion/go-sasl"

	"github.com/mailwire/mailwire/examples/custom-auth/demotoken"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// demoTokenServer returns the server side of X-DEMO-TOKEN for the embedded
// server, checking the users' tokens.
func demoTokenServer(tokens map[string]string) smtptest.AuthMechanism {
	return func(r *smtptest.AuthRequest) sasl.Server {
		return &demoServer{r: r, tokens: tokens}
	}
}

type demoServer struct {
	r         *smtptest.AuthRequest
	tokens    map[string]string
	user      string
	challenge []byte
}

func (s *demoServer) Next(response []byte) ([]byte, bool, error) {
	switch {
	case s.user == "" && response == nil:
		return []byte{}, false, nil // no initial response: ask for the user name
	case s.user == "":
		s.user = string(response)
		b := make([]byte, 16)
		rand.Read(b)
		s.challenge = []byte(hex.EncodeToString(b))
		return s.challenge, false, nil
	}
	tok, ok := s.tokens[s.user]
	if !ok || !hmac.Equal(response, []byte(demotoken.Sign([]byte(tok), s.challenge))) {
		return nil, false, errors.New("invalid token")
	}
	s.r.Login(s.user)
	return nil, true, nil
}
