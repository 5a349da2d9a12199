package config

import (
	"slices"
	"strconv"
	"sync"

	"github.com/mailwire/mailwire/middleware"
	"github.com/mailwire/mailwire/transport"
)

// A TransportFunc builds the transport of one kind from its parameters:
// the keys of the transport's mapping other than kind. It decodes them
// with p.Decode, which is strict, and reports its own checks with
// p.Errorf so that they name the file, line and key. It may build other
// transports described in its parameters (a list of members, say) with
// [Params.Transport].
//
// A TransportFunc is called each time [Config.Transport] builds a profile
// that uses its kind. It must not open connections or start work: the
// transport it returns does that when it sends.
type TransportFunc func(p *Params) (transport.Transport, error)

// A MiddlewareFunc builds a middleware from its parameters: the mapping
// under the entry's with key (empty if there is none). It decodes them
// with p.Decode and reports its own checks with p.Errorf. It may return a
// nil Middleware for parameters that ask for nothing; the entry is then
// skipped.
type MiddlewareFunc func(p *Params) (middleware.Middleware, error)

var (
	registryMu  sync.RWMutex
	transports  = make(map[string]TransportFunc)
	middlewares = make(map[string]MiddlewareFunc)
)

// RegisterTransport makes the transport kind available to configuration
// files: a transport whose kind is kind is built by f. It is meant to be
// called from the init function of the package that provides the kind, so
// that a program enables the kind by importing that package. f is called
// by [Parse] for every profile of that kind, with [Params.Checking] true,
// and again by [Config.Transport].
//
// RegisterTransport panics if kind is not a valid name (1 to 64 characters
// from a-z, 0-9, "-", "_" and ".", starting with a letter), if f is nil, or
// if the kind is already registered.
func RegisterTransport(kind string, f TransportFunc) {
	if !validName(kind) {
		panic("config: RegisterTransport: invalid transport kind " + strconv.Quote(kind))
	}
	if f == nil {
		panic("config: RegisterTransport of nil TransportFunc for kind " + kind)
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := transports[kind]; dup {
		panic("config: RegisterTransport called twice for kind " + kind)
	}
	transports[kind] = f
}

// RegisterMiddleware makes the middleware available to configuration files
// under name: an entry of a profile's middleware list whose name is name is
// built by f. It is meant to be called from the init function of the
// package that provides the middleware. Like a kind's, f is called by
// [Parse] with [Params.Checking] true, and again by [Config.Transport].
//
// RegisterMiddleware panics if name is not a valid name (as for
// [RegisterTransport]), if f is nil, or if the name is already registered.
func RegisterMiddleware(name string, f MiddlewareFunc) {
	if !validName(name) {
		panic("config: RegisterMiddleware: invalid middleware name " + strconv.Quote(name))
	}
	if f == nil {
		panic("config: RegisterMiddleware of nil MiddlewareFunc for " + name)
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := middlewares[name]; dup {
		panic("config: RegisterMiddleware called twice for " + name)
	}
	middlewares[name] = f
}

// Transports returns the registered transport kinds, sorted.
func Transports() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	return sortedKeys(transports)
}

// Middlewares returns the registered middleware names, sorted.
func Middlewares() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	return sortedKeys(middlewares)
}

func lookupTransport(kind string) (TransportFunc, error) {
	registryMu.RLock()
	f, ok := transports[kind]
	registryMu.RUnlock()
	if !ok {
		return nil, &unknownNameError{what: "transport kind", name: kind, sentinel: ErrUnknownTransport}
	}
	return f, nil
}

func lookupMiddleware(name string) (MiddlewareFunc, error) {
	registryMu.RLock()
	f, ok := middlewares[name]
	registryMu.RUnlock()
	if !ok {
		return nil, &unknownNameError{what: "middleware", name: name, sentinel: ErrUnknownMiddleware}
	}
	return f, nil
}

func sortedKeys[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// validName reports whether s may name a transport kind or a middleware.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
