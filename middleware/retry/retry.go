package retry

import (
	"context"
	"time"

	"github.com/mailwire/mailwire/middleware"
	"github.com/mailwire/mailwire/transport"
)

// Defaults. They suit a caller that waits for Send to return; waits of the
// order of the 30 minutes RFC 5321 section 4.5.4.1 suggests between
// deliveries belong to a queue, not to a synchronous call.
const (
	// DefaultMaxAttempts is the number of attempts, the first included.
	DefaultMaxAttempts = 3
	// DefaultMaxElapsed bounds the time from the start of Send to the start
	// of the last attempt.
	DefaultMaxElapsed = 10 * time.Minute
	// DefaultBackoffBase and DefaultBackoffMax are the parameters of the
	// default backoff, Exponential(DefaultBackoffBase, DefaultBackoffMax).
	DefaultBackoffBase = time.Second
	DefaultBackoffMax  = time.Minute
)

// An Option configures [New].
type Option interface {
	apply(*config)
}

type config struct {
	maxAttempts  int
	maxElapsed   time.Duration
	backoff      Backoff
	policy       Policy
	retryUnknown bool
	notify       func(attempt int, err error, wait time.Duration)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithMaxAttempts sets the maximum number of attempts, the first included;
// 1 disables retrying. n < 1 removes the limit, leaving the maximum elapsed
// time and ctx to end the retries. The default is [DefaultMaxAttempts].
func WithMaxAttempts(n int) Option {
	return optionFunc(func(c *config) { c.maxAttempts = n })
}

// WithMaxElapsed sets the longest time from the start of Send to the start
// of an attempt: a wait that would end after it is not begun, and retrying
// stops. d <= 0 removes the limit. The default is [DefaultMaxElapsed].
func WithMaxElapsed(d time.Duration) Option {
	return optionFunc(func(c *config) { c.maxElapsed = d })
}

// WithBackoff sets the wait before each retry. A nil b is ignored. The
// default is Exponential(DefaultBackoffBase, DefaultBackoffMax).
func WithBackoff(b Backoff) Option {
	return optionFunc(func(c *config) {
		if b != nil {
			c.backoff = b
		}
	})
}

// WithPolicy sets the function that decides which failed recipients are
// retried. A nil p is ignored. The default is [DefaultPolicy].
func WithPolicy(p Policy) Option {
	return optionFunc(func(c *config) {
		if p != nil {
			c.policy = p
		}
	})
}

// WithRetryUnknown(true) retries recipients whose outcome is Unknown: the
// connection was lost after the final dot, so the server may already have
// delivered the message, and a retry may deliver a second copy. It turns
// at-most-once delivery into at-least-once; choose it only where duplicates
// are harmless or removed downstream (by Message-ID, say). The [Policy] is
// not consulted for Unknown recipients. The default is false.
func WithRetryUnknown(retry bool) Option {
	return optionFunc(func(c *config) { c.retryUnknown = retry })
}

// WithNotify sets a function called before each wait with the number of the
// attempt that failed (1 for the first), the error it returned and the
// coming wait. It runs on the goroutine calling Send, so concurrent Sends
// call it concurrently. A nil f is ignored.
func WithNotify(f func(attempt int, err error, wait time.Duration)) Option {
	return optionFunc(func(c *config) {
		if f != nil {
			c.notify = f
		}
	})
}

// New returns a Middleware that retries the recipients of a Send that failed
// transiently, as the package documentation describes.
//
// Each attempt is reported to the smtptrace.ClientTrace in ctx, if any,
// through its AttemptStart and AttemptDone hooks; the transport's own phase
// hooks run in between.
//
// The error returned follows the transport contract: nil if every recipient
// was accepted; the last attempt's *transport.OpError if no recipient was
// accepted in any attempt and that transaction failed as a whole; otherwise
// the merged Result's Err, one *transport.RcptError per recipient not
// accepted. If ctx ends while
// recipients could still be retried, the error is context.Cause(ctx). If
// retrying stopped for another reason while recipients could still be
// retried (attempts exhausted, no time left, a body that cannot be rewound),
// their errors, and the returned error, are wrapped so that errors.Is
// reports the reason ([ErrMaxAttempts], [ErrMaxElapsed], [ErrNotRewindable])
// and still matches what it matched ([transport.ErrTransient], or
// [transport.ErrNotAllAccepted] for a recipient an all-or-nothing
// transaction abandoned).
func New(opts ...Option) middleware.Middleware {
	c := config{
		maxAttempts: DefaultMaxAttempts,
		maxElapsed:  DefaultMaxElapsed,
		backoff:     Exponential(DefaultBackoffBase, DefaultBackoffMax),
		policy:      DefaultPolicy,
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return func(next transport.Transport) transport.Transport {
		return &retrier{next: next, cfg: c}
	}
}

// wait sleeps for d or until ctx is done, and then returns
// context.Cause(ctx).
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return context.Cause(ctx)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
