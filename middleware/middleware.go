package middleware

import "github.com/mailwire/mailwire/transport"

// A Middleware wraps a Transport to add behaviour around Send. The Transport
// it returns must keep the contract of [transport.Transport] and should have
// an Unwrap() transport.Transport method.
type Middleware func(transport.Transport) transport.Transport

// Chain returns a Middleware that applies mws in order: mws[0] is the
// outermost, so it sees each Send first and its result last; the last is the
// innermost, closest to the transport. Chain(a, b)(t) is a(b(t)). Nil
// entries are skipped, and Chain() is the identity.
func Chain(mws ...Middleware) Middleware {
	mws = append([]Middleware(nil), mws...) // later changes to the caller's slice do not leak in
	return func(t transport.Transport) transport.Transport {
		for i := len(mws) - 1; i >= 0; i-- {
			if mws[i] != nil {
				t = mws[i](t)
			}
		}
		return t
	}
}
