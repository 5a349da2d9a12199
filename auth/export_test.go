package auth

import (
	"context"

	"github.com/emersion/go-sasl"
)

// ResetRegistry empties the mechanism registry and returns a function that
// restores it.
func ResetRegistry() (restore func()) {
	registryMu.Lock()
	saved := registry
	registry = make(map[string]NewFunc)
	registryMu.Unlock()
	return func() {
		registryMu.Lock()
		registry = saved
		registryMu.Unlock()
	}
}

// SCRAMWithNonce returns the NewFunc of the named SCRAM mechanism with a
// fixed client nonce, for the RFC test vectors.
func SCRAMWithNonce(mech, nonce string) NewFunc {
	v := map[string]scramVariant{
		scramSHA1.name:       scramSHA1,
		scramSHA256.name:     scramSHA256,
		scramSHA256Plus.name: scramSHA256Plus,
	}[mech]
	return func(_ context.Context, c Credentials, info ServerInfo) (sasl.Client, error) {
		return v.newClient(c, info, func() string { return nonce })
	}
}
