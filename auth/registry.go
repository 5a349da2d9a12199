package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/emersion/go-sasl"
)

// A NewFunc returns a new sasl.Client for one authentication exchange on the
// connection info describes. It is called once per connection, after EHLO
// and any TLS handshake; ctx bounds any work it does first, such as fetching
// an OAuth token. A NewFunc must not put c's secrets in its errors.
type NewFunc func(ctx context.Context, c Credentials, info ServerInfo) (sasl.Client, error)

// ErrUnknownMechanism is wrapped by the error [Lookup] and [New] return for
// a name no mechanism is registered under.
var ErrUnknownMechanism = errors.New("auth: unknown mechanism")

var (
	registryMu sync.RWMutex
	registry   = make(map[string]NewFunc)
)

// Register makes the mechanism f available under name, upper-cased. It is
// meant to be called from the init function of the package that implements
// the mechanism. Register panics if name is not a valid RFC 4422 mechanism
// name (1 to 20 characters from A-Z, 0-9, "-" and "_"), if f is nil, or if
// a mechanism is already registered under name.
func Register(name string, f NewFunc) {
	n, ok := canonicalName(name)
	if !ok {
		panic("auth: invalid mechanism name " + strconv.Quote(name))
	}
	if f == nil {
		panic("auth: Register of nil constructor for mechanism " + n)
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[n]; dup {
		panic("auth: Register called twice for mechanism " + n)
	}
	registry[n] = f
}

// Lookup returns the constructor registered under name (case-insensitive).
// For an unknown name the error wraps [ErrUnknownMechanism]: the usual
// cause is a missing import of the package that registers it.
func Lookup(name string) (NewFunc, error) {
	n, _ := canonicalName(name)
	registryMu.RLock()
	f, ok := registry[n]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q (forgotten import?)", ErrUnknownMechanism, name)
	}
	return f, nil
}

// Mechanisms returns the names of the registered mechanisms, sorted.
func Mechanisms() []string {
	registryMu.RLock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	registryMu.RUnlock()
	slices.Sort(names)
	return names
}

// canonicalName upper-cases an ASCII mechanism name and reports whether it
// is valid under RFC 4422 section 3.1.
func canonicalName(name string) (string, bool) {
	if len(name) == 0 || len(name) > 20 {
		return name, false
	}
	b := []byte(name)
	for i, ch := range b {
		switch {
		case 'a' <= ch && ch <= 'z':
			b[i] = ch - 'a' + 'A'
		case 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9', ch == '-', ch == '_':
		default:
			return name, false
		}
	}
	return string(b), true
}
