package ratelimit

import (
	"context"
	"fmt"
	"io"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/middleware"
	"github.com/mailwire/mailwire/middleware/internal/report"
	"github.com/mailwire/mailwire/transport"
)

// A Limiter blocks until n events may happen, or ctx ends. *rate.Limiter
// from golang.org/x/time/rate implements it, and so do wrappers that add
// metrics or a distributed store.
//
// A Limiter that also has a Burst() int method (as *rate.Limiter has)
// tells [PerRecipient] the most tokens one WaitN may ask for.
type Limiter interface {
	WaitN(ctx context.Context, n int) error
}

// PerMessage returns a Middleware that waits for one token from l before
// each Send. It panics if l is nil.
func PerMessage(l Limiter) middleware.Middleware {
	if l == nil {
		panic("ratelimit: PerMessage with a nil Limiter")
	}
	return func(next transport.Transport) transport.Transport {
		return &limited{next: next, l: l}
	}
}

// PerRecipient returns a Middleware that waits for len(env.To) tokens from
// l before each Send, so l's rate counts recipients. It panics if l is nil.
//
// A *rate.Limiter refuses a WaitN for more tokens than its burst. So, if l
// has a Burst() int method and a Send has more recipients than the burst,
// PerRecipient waits in several WaitN calls of at most the burst each. The
// rate still holds, but the tokens of the chunks already granted are spent
// even if ctx ends before the last one is. A Limiter without Burst gets a
// single WaitN(ctx, len(env.To)).
func PerRecipient(l Limiter) middleware.Middleware {
	if l == nil {
		panic("ratelimit: PerRecipient with a nil Limiter")
	}
	return func(next transport.Transport) transport.Transport {
		return &limited{next: next, l: l, perRcpt: true}
	}
}

type limited struct {
	next    transport.Transport
	l       Limiter
	perRcpt bool
}

var _ transport.Transport = (*limited)(nil)

// Unwrap returns the wrapped transport.
func (t *limited) Unwrap() transport.Transport { return t.next }

func (t *limited) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
	n := 1
	if t.perRcpt {
		if env == nil {
			return t.next.Send(ctx, env, msg) // invalid; the transport says so
		}
		n = len(env.To)
	}
	if err := waitN(ctx, t.l, n); err != nil {
		return report.NotAttempted(env, err), err
	}
	return t.next.Send(ctx, env, msg)
}

type burster interface {
	Burst() int
}

// waitN takes n tokens from l, in chunks of at most l's burst if it has one.
func waitN(ctx context.Context, l Limiter, n int) error {
	for n > 0 {
		k := n
		if b, ok := l.(burster); ok {
			if burst := b.Burst(); burst > 0 && k > burst {
				k = burst
			}
		}
		if err := l.WaitN(ctx, k); err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("ratelimit: %w", err)
		}
		n -= k
	}
	return nil
}

// Concurrency returns a Middleware that lets at most n Sends run at once;
// the others wait, in no particular order, until one returns or their ctx
// ends. The limit is shared by every transport the returned Middleware
// wraps. It panics if n < 1.
func Concurrency(n int) middleware.Middleware {
	if n < 1 {
		panic(fmt.Sprintf("ratelimit: Concurrency(%d): the limit must be at least 1", n))
	}
	sem := make(chan struct{}, n)
	return func(next transport.Transport) transport.Transport {
		return &concurrency{next: next, sem: sem}
	}
}

type concurrency struct {
	next transport.Transport
	sem  chan struct{}
}

var _ transport.Transport = (*concurrency)(nil)

// Unwrap returns the wrapped transport.
func (t *concurrency) Unwrap() transport.Transport { return t.next }

func (t *concurrency) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
	if ctx.Err() != nil {
		err := context.Cause(ctx)
		return report.NotAttempted(env, err), err
	}
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		err := context.Cause(ctx)
		return report.NotAttempted(env, err), err
	}
	defer func() { <-t.sem }()
	return t.next.Send(ctx, env, msg)
}
