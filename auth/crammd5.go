package auth

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/hex"
	"fmt"

	"github.com/emersion/go-sasl"
)

func init() { Register("CRAM-MD5", CRAMMD5) }

var _ NewFunc = CRAMMD5

// CRAMMD5 is the [NewFunc] of the CRAM-MD5 mechanism (RFC 2195). The client
// answers the server's challenge with Username and the hex HMAC-MD5 of the
// challenge keyed with Password. The password is not sent, but anyone who
// records the exchange can test guesses against it offline, so a [Config]
// applies the same rule as for PLAIN. The server must store the password
// (or an equivalent), and the server is not authenticated; prefer SCRAM. It
// needs Username and Password and cannot carry an Identity other than
// Username.
func CRAMMD5(_ context.Context, c Credentials, info ServerInfo) (sasl.Client, error) {
	if err := c.checkFor(info); err != nil {
		return nil, err
	}
	if err := cramMD5Usable(c, info); err != nil {
		return nil, err
	}
	return &cramMD5Client{user: c.Username, pass: c.Password}, nil
}

func cramMD5Usable(c Credentials, _ ServerInfo) error {
	if err := needPassword("CRAM-MD5", c); err != nil {
		return err
	}
	return noAuthzid("CRAM-MD5", c)
}

type cramMD5Client struct {
	user, pass string
	answered   bool
}

func (a *cramMD5Client) Start() (string, []byte, error) {
	return "CRAM-MD5", nil, nil
}

func (a *cramMD5Client) Next(challenge []byte) ([]byte, error) {
	if a.answered {
		return nil, unexpectedChallenge("CRAM-MD5")
	}
	if len(challenge) == 0 {
		return nil, fmt.Errorf("auth: CRAM-MD5: empty challenge")
	}
	a.answered = true
	mac := hmac.New(md5.New, []byte(a.pass))
	mac.Write(challenge)
	resp := make([]byte, 0, len(a.user)+1+2*md5.Size)
	resp = append(resp, a.user...)
	resp = append(resp, ' ')
	resp = hex.AppendEncode(resp, mac.Sum(nil))
	return resp, nil
}
