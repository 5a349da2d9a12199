package auth_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/emersion/go-sasl"
	"github.com/mailwire/mailwire/auth"
)

// A package that provides a mechanism registers it from init; programs
// that want it import the package for that side effect.
func init() {
	auth.Register("X-DEMO-HMAC", newDemoHMAC)
}

// newDemoHMAC is the constructor the registry holds: it runs once per
// connection and returns a fresh client, since a client keeps the state of
// one exchange.
func newDemoHMAC(_ context.Context, c auth.Credentials, _ auth.ServerInfo) (sasl.Client, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Username == "" || c.Password == "" {
		// Never put the password itself in an error.
		return nil, errors.New("X-DEMO-HMAC: needs a username and a password")
	}
	return &demoHMAC{user: c.Username, key: []byte(c.Password)}, nil
}

// demoHMAC sends the username, then answers the server's one challenge
// with its HMAC-SHA256 under the password.
type demoHMAC struct {
	user     string
	key      []byte
	answered bool
}

func (d *demoHMAC) Start() (string, []byte, error) {
	return "X-DEMO-HMAC", []byte(d.user), nil
}

func (d *demoHMAC) Next(challenge []byte) ([]byte, error) {
	if d.answered {
		return nil, sasl.ErrUnexpectedServerChallenge
	}
	d.answered = true
	mac := hmac.New(sha256.New, d.key)
	mac.Write(challenge)
	return []byte(hex.EncodeToString(mac.Sum(nil))), nil
}

func ExampleRegister() {
	a, err := auth.New("x-demo-hmac", auth.Credentials{Username: "alice", Password: "example-password"})
	if err != nil {
		fmt.Println(err)
		return
	}
	// A mechanism registered by another package is assumed to send a
	// credential: it needs TLS, a Unix socket or AllowInsecure.
	client, err := a.Start(context.Background(), auth.ServerInfo{
		Mechanisms: []string{"PLAIN", "X-DEMO-HMAC"},
		Unix:       true,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	mech, ir, _ := client.Start()
	fmt.Println(mech, string(ir))
	resp, _ := client.Next([]byte("challenge-1"))
	fmt.Println(string(resp))
	// Output:
	// X-DEMO-HMAC alice
	// b294ecaab8cfd7107ba2b566903de6312ffabe8f1c2ac7a1e6d27c81a2925ce1
}
