package retry

import (
	"context"
	"errors"
	"io"
	"slices"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/smtptrace"
	"github.com/mailwire/mailwire/transport"
)

type retrier struct {
	next transport.Transport
	cfg  config
}

var _ transport.Transport = (*retrier)(nil)

// Unwrap returns the wrapped transport.
func (t *retrier) Unwrap() transport.Transport { return t.next }

func (t *retrier) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
	if env == nil || len(env.To) == 0 {
		// Invalid: the transport refuses it, permanently.
		return t.next.Send(ctx, env, msg)
	}
	start := time.Now()
	b := newBody(msg)
	defer b.finish()

	merged := &transport.Result{Rcpts: make([]transport.RcptResult, len(env.To))}
	for i, r := range env.To {
		merged.Rcpts[i].Addr = r.Addr
	}
	pending := make([]int, len(env.To)) // indices into env.To sent in this attempt
	for i := range pending {
		pending[i] = i
	}

	var (
		firstRes *transport.Result // the first attempt's, as the transport returned them
		firstErr error
		lastErr  error
		stopErr  error // context.Cause(ctx) if ctx ended while retries were due
		reason   error // why retrying stopped while retries were due
		attempt  int
	)
	for attempt = 1; ; attempt++ {
		r, err := b.next()
		if err != nil {
			reason = err
			break
		}
		sendEnv := env
		if attempt > 1 {
			sendEnv = subset(env, pending)
		}
		attemptStart(ctx, attempt)
		res, err := t.next.Send(ctx, sendEnv, r)
		r.done()
		attemptDone(ctx, attempt, err)
		if attempt == 1 {
			firstRes, firstErr = res, err
		}
		lastErr = err
		merge(merged, pending, res, err)

		pending = t.retryable(ctx, merged, pending)
		if len(pending) == 0 {
			break
		}
		if ctx.Err() != nil {
			stopErr = context.Cause(ctx)
			break
		}
		if !b.rewindable() {
			reason = ErrNotRewindable
			break
		}
		if t.cfg.maxAttempts > 0 && attempt >= t.cfg.maxAttempts {
			reason = ErrMaxAttempts
			break
		}
		d := max(t.cfg.backoff(attempt), 0)
		now := time.Now()
		if t.cfg.maxElapsed > 0 && now.Add(d).Sub(start) > t.cfg.maxElapsed {
			reason = ErrMaxElapsed
			break
		}
		if dl, ok := ctx.Deadline(); ok && !now.Add(d).Before(dl) {
			reason = ErrMaxElapsed
			break
		}
		if t.cfg.notify != nil {
			t.cfg.notify(attempt, err, d)
		}
		if err := wait(ctx, d); err != nil {
			stopErr = err
			break
		}
	}

	if attempt == 1 && reason == nil && stopErr == nil {
		// Nothing was retried: return exactly what the transport did.
		return firstRes, firstErr
	}
	if reason != nil {
		for _, i := range pending {
			rr := &merged.Rcpts[i]
			rr.Err = &giveUpError{err: rr.Err, reason: reason}
		}
	}
	_, whole := lastErr.(*transport.OpError)
	switch {
	case stopErr != nil:
		return merged, stopErr
	case merged.Count(transport.Accepted) == len(merged.Rcpts):
		return merged, nil
	case merged.Count(transport.Accepted) > 0 || !whole:
		// Some recipient has the message, or the last attempt's error was
		// per recipient: one *RcptError per recipient not accepted, from
		// whichever attempt decided it.
		return merged, merged.Err()
	case reason != nil:
		return merged, &giveUpError{err: lastErr, reason: reason}
	default:
		// Nothing was accepted and the last transaction failed as a whole.
		return merged, lastErr
	}
}

// retryable returns the indices, among those just attempted, of the
// recipients to send again.
//
// Each recipient is judged on its own, except in a transaction the
// transport abandoned under all-or-nothing (see resetByAllOrNothing):
// there the envelope is judged as a whole, so that a subset of it never
// receives the message. Either every recipient of that transaction that
// was not accepted is sent again, together, or none is: all of them if
// every refused recipient (one whose error does not match
// [transport.ErrNotAllAccepted]) is retryable, none if any of them is not,
// or if no refused recipient explains the reset.
func (t *retrier) retryable(ctx context.Context, merged *transport.Result, attempted []int) []int {
	var (
		out     []int // recipients retryable on their own merits
		open    []int // recipients not accepted
		reset   bool  // the transaction was abandoned under all-or-nothing
		blocked bool  // a refused recipient is not to be retried
	)
	for _, i := range attempted {
		rr := merged.Rcpts[i]
		if rr.Outcome == transport.Accepted {
			continue
		}
		open = append(open, i)
		if resetByAllOrNothing(rr) {
			// Its fate is the envelope's; the Policy is not asked.
			reset = true
			continue
		}
		if t.again(ctx, rr) {
			out = append(out, i)
		} else {
			blocked = true
		}
	}
	if !reset {
		return out
	}
	if blocked || len(out) == 0 {
		return nil
	}
	return open
}

// again reports whether rr, a recipient not accepted, is to be sent again
// on its own merits.
func (t *retrier) again(ctx context.Context, rr transport.RcptResult) bool {
	if rr.Outcome == transport.Unknown {
		return t.cfg.retryUnknown
	}
	return t.cfg.policy(ctx, rr)
}

// resetByAllOrNothing reports whether rr, a recipient not accepted, was
// accepted at RCPT in a transaction that the transport then abandoned,
// sending nothing, because another recipient was refused
// (transport.SMTP's RequireAllRecipients).
func resetByAllOrNothing(rr transport.RcptResult) bool {
	return errors.Is(rr.Err, transport.ErrNotAllAccepted)
}

// merge records the outcome of an attempt that sent the recipients at
// indices sent into merged.
func merge(merged *transport.Result, sent []int, res *transport.Result, err error) {
	if res != nil && len(res.Rcpts) == len(sent) {
		for j, i := range sent {
			got := res.Rcpts[j]
			rr := &merged.Rcpts[i]
			rr.Outcome, rr.Reply, rr.Err = got.Outcome, got.Reply, got.Err
			if rr.Outcome != transport.Accepted && rr.Err == nil {
				rr.Err = err
			}
			rr.Attempts += max(got.Attempts, 1)
		}
		if res.Reply != nil {
			merged.Reply = res.Reply
		}
		return
	}
	// The transport broke its contract (no Result, or a Result of the wrong
	// length): derive each outcome from the error.
	outcome := transport.Accepted
	switch {
	case err == nil:
	case errors.Is(err, transport.ErrTransient):
		outcome = transport.TempFailed
	case errors.Is(err, transport.ErrPermanent):
		outcome = transport.PermFailed
	default:
		outcome = transport.Unknown // it may have been delivered
	}
	for _, i := range sent {
		rr := &merged.Rcpts[i]
		rr.Outcome, rr.Reply, rr.Err = outcome, nil, err
		rr.Attempts++
	}
}

// subset returns a copy of env whose recipients are those at indices idx.
// env itself is never modified.
func subset(env *envelope.Envelope, idx []int) *envelope.Envelope {
	c := *env
	c.To = make([]envelope.Recipient, len(idx))
	for j, i := range idx {
		r := env.To[i]
		r.Notify = slices.Clone(r.Notify)
		c.To[j] = r
	}
	return &c
}

func attemptStart(ctx context.Context, n int) {
	if t := smtptrace.ContextClientTrace(ctx); t != nil && t.AttemptStart != nil {
		t.AttemptStart(n)
	}
}

func attemptDone(ctx context.Context, n int, err error) {
	if t := smtptrace.ContextClientTrace(ctx); t != nil && t.AttemptDone != nil {
		t.AttemptDone(n, err)
	}
}
