package retry

import (
	"context"
	"errors"

	"github.com/mailwire/mailwire/transport"
)

// A Policy reports whether a recipient that was not accepted should be sent
// again. It is called after each attempt for each recipient of that attempt
// whose outcome is TempFailed, PermFailed or NotAttempted. Accepted
// recipients are never retried, and Unknown ones only as [WithRetryUnknown]
// says, without asking the Policy. Whatever the Policy says, nothing is
// retried once ctx is done or the limits are reached.
//
// The Policy is not called for a recipient whose error matches
// [transport.ErrNotAllAccepted]: the transport had accepted it but sent
// nothing, under all-or-nothing, because another recipient was refused.
// Such a recipient is retried, together with the others of its
// transaction, exactly when the Policy (or [WithRetryUnknown]) retries
// every refused recipient of that transaction; see the package
// documentation.
//
// A Policy must be safe for concurrent use. To refine the default, call
// [DefaultPolicy] from your own.
type Policy func(ctx context.Context, r transport.RcptResult) bool

// DefaultPolicy retries a recipient that failed transiently: its outcome is
// TempFailed and its error is transient. An error the transport classified
// (one holding a *transport.OpError or *transport.ReplyError) is transient
// if it matches [transport.ErrTransient]: a 4yz reply, a 421 for the whole
// transaction, a connection lost before the end of the data. A bare error
// from the connection, which a transport records for the recipients of a
// transaction it aborted before the end of the data, is classified the same
// way, as a failure in the data phase.
//
// It also retries a TempFailed recipient whose error is
// context.DeadlineExceeded while ctx itself is still live: that deadline
// belonged to the attempt (a middleware.Timeout placed inside the retry
// middleware), not to the caller, and the TempFailed outcome says the
// message was not delivered.
//
// Everything else is not retried: permanent failures, TLS and certificate
// failures, a refused insecure AUTH, errors from reading the message, the
// caller's own context error, and errors nothing classifies.
func DefaultPolicy(ctx context.Context, r transport.RcptResult) bool {
	if r.Outcome != transport.TempFailed || r.Err == nil {
		return false
	}
	if errors.Is(r.Err, context.DeadlineExceeded) {
		return ctx.Err() == nil
	}
	return transient(r.Err)
}

// transient reports whether err, the error of a recipient that was certainly
// not delivered, is worth retrying.
func transient(err error) bool {
	var (
		oe *transport.OpError
		re *transport.ReplyError
	)
	if errors.As(err, &oe) || errors.As(err, &re) {
		return errors.Is(err, transport.ErrTransient)
	}
	return errors.Is(&transport.OpError{Op: transport.OpData, Err: err}, transport.ErrTransient)
}
