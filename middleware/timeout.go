package middleware

import (
	"context"
	"io"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
)

// Timeout returns a Middleware that bounds each Send with
// context.WithTimeout(ctx, d). A non-positive d adds no bound.
//
// When the deadline expires the transport aborts the Send; the error it
// returns wraps context.DeadlineExceeded, and so matches none of
// [transport.ErrTransient], [transport.ErrPermanent] and
// [transport.ErrUnknownOutcome], as the transport contract requires for
// context errors. Recipients that the aborted Send certainly did not reach
// are TempFailed, and those cut off after the final dot are Unknown.
//
// Placed inside retry.New, Timeout bounds each attempt, and the retry
// middleware's default policy retries a TempFailed recipient whose attempt
// ran out of time while the caller's context was still live. Placed outside,
// it bounds the whole Send, waits between attempts included.
func Timeout(d time.Duration) Middleware {
	return func(next transport.Transport) transport.Transport {
		if d <= 0 {
			return next
		}
		return &timeout{next: next, d: d}
	}
}

type timeout struct {
	next transport.Transport
	d    time.Duration
}

var _ transport.Transport = (*timeout)(nil)

func (t *timeout) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	return t.next.Send(ctx, env, msg)
}

// Unwrap returns the wrapped transport.
func (t *timeout) Unwrap() transport.Transport { return t.next }
