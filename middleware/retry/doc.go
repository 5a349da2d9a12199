// Package retry provides a middleware that retries a Send, recipient by
// recipient, for the recipients that failed transiently, so that no recipient
// is ever sent the same message twice.
//
// After each attempt, the recipients that were Accepted or PermFailed are
// final. Those that were TempFailed and that the [Policy] accepts (by
// default, those whose failure matches [transport.ErrTransient]: a 4yz
// reply, a 421, a connection lost before the end of the data) are sent
// again, alone (but see all or nothing below), in a clone of the envelope
// that lists only them. The outcomes of all attempts merge into one
// [transport.Result] in the original envelope order, whose
// RcptResult.Attempts says how many transactions each recipient was in.
//
// A transport that sends all or nothing (transport.SMTP with
// RequireAllRecipients) abandons a transaction in which any recipient is
// refused: nothing is sent, the refused recipients carry their own errors
// and the recipients the server had accepted fail with
// [transport.ErrNotAllAccepted]. Retrying only the refused ones would give
// the message to a subset of the envelope, so such a transaction is
// retried as a whole: if every refused recipient is retryable under the
// [Policy] (for the default one, every refusal is transient, a 450 say),
// the next attempt sends to all the recipients of that transaction
// together, and the Policy is not asked about the ErrNotAllAccepted ones;
// if any refused recipient is not retryable (a 550, say), none of them is
// retried, and each keeps the outcome and error the transport gave it (the
// refusal's reply, or ErrNotAllAccepted). Should retrying stop for another
// reason (attempts exhausted, no time left), the errors of the
// ErrNotAllAccepted recipients still match it.
//
// Never retried: a permanent failure; a failure that matches none of the
// classes (a TLS or certificate failure, a local policy refusal, the
// caller's own context error); an Unknown outcome (the connection was lost
// after the final dot, so the server may have delivered the message), unless
// the caller opts in with [WithRetryUnknown]; anything once ctx is done.
//
// The message body is never buffered. A retry after the body was read needs
// it from its start again: if msg implements [Reopener] (see [ReopenFunc]),
// Reopen provides a fresh reader; otherwise, if msg is an io.Seeker, it is
// sought back to the offset it had when Send was called. A body that is
// neither is retried only if the failed attempt read none of it (the failure
// came before DATA); otherwise the recipients stay TempFailed and their
// error matches [ErrNotRewindable].
//
// Waits between attempts follow a [Backoff] (by default [Exponential] with
// full jitter), honour ctx and never extend past the maximum elapsed time
// ([WithMaxElapsed]) or ctx's deadline.
package retry
