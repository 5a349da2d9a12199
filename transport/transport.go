package transport

import (
	"context"
	"io"

	"github.com/mailwire/mailwire/envelope"
)

// A Transport delivers one message.
//
// Send submits msg, an RFC 5322 message, for env's recipients. The contract,
// which every implementation and every middleware keeps:
//
//   - Send reads msg at most once, from the start, and never buffers it whole;
//     memory does not grow with the message size. Line endings are normalised
//     to CRLF on the wire. Send does not close msg.
//   - Send does not modify env, and does not retain env or msg after it returns.
//   - Send is safe for concurrent use by multiple goroutines.
//   - Send returns a nil error only if the message was accepted for every
//     recipient.
//   - Whenever env is valid, Send returns a non-nil *Result with exactly one
//     [RcptResult] per recipient of env, in envelope order, whatever the error.
//     Each has an [Outcome]: Accepted, TempFailed, PermFailed or Unknown
//     (NotAttempted only from a middleware that stopped before the
//     transport, see [Outcome]).
//   - If some recipients were refused and the message was delivered to the
//     others, the error is [Result.Err]: a go-multierror aggregate of one
//     *[RcptError] per refused recipient.
//   - If the whole transaction failed, the error is an *[OpError] naming the
//     step that failed.
//   - Errors are classified with errors.Is against [ErrTransient],
//     [ErrPermanent] and [ErrUnknownOutcome]. Only what is certainly
//     undelivered and worth retrying matches ErrTransient; the caller's own
//     context error and a connection lost after the final dot never do.
//   - Send honours ctx: cancellation or a deadline aborts all I/O promptly,
//     and a message whose data was not terminated is never delivered.
type Transport interface {
	Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*Result, error)
}

// Func adapts an ordinary function to the [Transport] interface.
type Func func(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*Result, error)

// Send calls f(ctx, env, msg).
func (f Func) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*Result, error) {
	return f(ctx, env, msg)
}

var _ Transport = Func(nil)

// An IdleCloser is a Transport that keeps idle connections; the pooled SMTP
// and LMTP transports implement it. Middleware expose the transport they wrap
// through an Unwrap method so that [CloseIdleConnections] finds it.
type IdleCloser interface {
	CloseIdleConnections()
}

// CloseIdleConnections closes the idle connections of t, or of the transport
// it wraps, found through Unwrap() Transport methods. It does nothing if no
// transport in the chain keeps idle connections.
func CloseIdleConnections(t Transport) {
	for t != nil {
		if c, ok := t.(IdleCloser); ok {
			c.CloseIdleConnections()
			return
		}
		u, ok := t.(interface{ Unwrap() Transport })
		if !ok {
			return
		}
		t = u.Unwrap()
	}
}
