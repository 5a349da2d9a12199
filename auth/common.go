package auth

import (
	"fmt"

	"github.com/emersion/go-sasl"
)

// needPassword checks the fields every password mechanism needs.
func needPassword(mech string, c Credentials) error {
	switch {
	case c.Username == "":
		return unusable(mech, "no username")
	case c.Password == "":
		return unusable(mech, "no password")
	}
	return nil
}

// noAuthzid checks that c asks for no authorization identity the
// mechanism cannot carry.
func noAuthzid(mech string, c Credentials) error {
	if c.Identity != "" && c.Identity != c.Username {
		return unusable(mech, "cannot carry an authorization identity")
	}
	return nil
}

// unexpectedChallenge is the error for a challenge a client cannot answer.
func unexpectedChallenge(mech string) error {
	return fmt.Errorf("auth: %s: %w", mech, sasl.ErrUnexpectedServerChallenge)
}
