package ratelimit

import (
	"context"
	"errors"
	"io"
	"sync"

	"golang.org/x/time/rate"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/middleware"
	"github.com/mailwire/mailwire/transport"
)

// Defaults of [Adaptive].
const (
	// DefaultDecrease multiplies the rate on each throttling reply: it
	// halves, as TCP congestion control halves its window on a loss.
	DefaultDecrease = 0.5
	// DefaultRecovery is the fraction of the base rate added back after each
	// Send that was accepted for at least one recipient: twenty such Sends
	// recover from the lowest rate.
	DefaultRecovery = 0.05
	// DefaultFloor is the lowest rate, as a fraction of the base rate.
	DefaultFloor = 0.01
)

// An AdaptiveOption configures [Adaptive].
type AdaptiveOption interface {
	apply(*adaptiveConfig)
}

type adaptiveConfig struct {
	decrease float64
	recovery float64
	floor    rate.Limit // 0: DefaultFloor of the base
	throttle func(code int, enhanced transport.EnhancedCode) bool
}

type adaptiveOptionFunc func(*adaptiveConfig)

func (f adaptiveOptionFunc) apply(c *adaptiveConfig) { f(c) }

// WithDecrease sets the factor, between 0 and 1 exclusive, by which the rate
// is multiplied on a throttling reply. Other values are ignored. The default
// is [DefaultDecrease].
func WithDecrease(factor float64) AdaptiveOption {
	return adaptiveOptionFunc(func(c *adaptiveConfig) {
		if factor > 0 && factor < 1 {
			c.decrease = factor
		}
	})
}

// WithRecovery sets the fraction of the base rate, between 0 and 1
// inclusive, added back after each Send accepted for at least one recipient
// and without a throttling reply. Other values are ignored. The default is
// [DefaultRecovery].
func WithRecovery(fraction float64) AdaptiveOption {
	return adaptiveOptionFunc(func(c *adaptiveConfig) {
		if fraction > 0 && fraction <= 1 {
			c.recovery = fraction
		}
	})
}

// WithFloor sets the lowest rate Adaptive lowers the limiter to. A
// non-positive limit is ignored. The default is [DefaultFloor] times the
// base rate.
func WithFloor(limit rate.Limit) AdaptiveOption {
	return adaptiveOptionFunc(func(c *adaptiveConfig) {
		if limit > 0 {
			c.floor = limit
		}
	})
}

// WithThrottle replaces [IsThrottle] as the test of whether a reply asks
// the client to slow down. A nil f is ignored.
func WithThrottle(f func(code int, enhanced transport.EnhancedCode) bool) AdaptiveOption {
	return adaptiveOptionFunc(func(c *adaptiveConfig) {
		if f != nil {
			c.throttle = f
		}
	})
}

// IsThrottle reports whether a reply asks the client to slow down: a 421,
// 450 or 451 with an enhanced code of class 4.7 (security or policy), such as
// "421 4.7.0 Try again later" or "450 4.7.1 rate limit exceeded".
func IsThrottle(code int, enhanced transport.EnhancedCode) bool {
	return (code == 421 || code == 450 || code == 451) && enhanced[0] == 4 && enhanced[1] == 7
}

// Adaptive returns a Middleware that adjusts l's rate from the replies to
// the Sends it wraps. It does not wait itself: pair it with [PerMessage] or
// [PerRecipient] on the same limiter, which do:
//
//	lim := rate.NewLimiter(10, 1)
//	mw := middleware.Chain(ratelimit.PerMessage(lim), ratelimit.Adaptive(lim))
//
// The base rate is l.Limit() when Adaptive is called. When a Send's Result
// or error holds a throttling reply ([IsThrottle]), Adaptive multiplies l's
// rate by the decrease factor, down to the floor; it does so once for the
// Sends that were in flight together, since they met the same throttling.
// After each Send accepted for at least one recipient with no throttling
// reply, it adds the recovery fraction of the base rate back, up to the base.
// This is additive increase, multiplicative decrease, as in TCP. Placed
// inside retry.New, it sees each attempt, so a retry after a throttling reply
// already waits at the lower rate.
//
// Adaptive calls l.SetLimit and assumes nothing else does while it is in
// use. If l's rate is rate.Inf, it does nothing. It panics if l is nil.
func Adaptive(l *rate.Limiter, opts ...AdaptiveOption) middleware.Middleware {
	if l == nil {
		panic("ratelimit: Adaptive with a nil *rate.Limiter")
	}
	c := adaptiveConfig{decrease: DefaultDecrease, recovery: DefaultRecovery, throttle: IsThrottle}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	st := &adaptiveState{l: l, cfg: c, base: l.Limit()}
	if st.cfg.floor <= 0 {
		st.cfg.floor = st.base * DefaultFloor
	}
	st.cfg.floor = min(st.cfg.floor, st.base)
	return func(next transport.Transport) transport.Transport {
		return &adaptive{next: next, st: st}
	}
}

type adaptiveState struct {
	l    *rate.Limiter
	cfg  adaptiveConfig
	base rate.Limit

	mu  sync.Mutex
	gen uint64 // incremented at each decrease
}

// generation returns the current generation, to compare after a Send.
func (s *adaptiveState) generation() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// slowDown lowers the rate, unless it was already lowered since generation
// g, during the Send that met the throttling.
func (s *adaptiveState) slowDown(g uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g != s.gen {
		return
	}
	s.gen++
	s.l.SetLimit(max(s.l.Limit()*rate.Limit(s.cfg.decrease), s.cfg.floor))
}

// speedUp raises the rate towards the base.
func (s *adaptiveState) speedUp() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.l.Limit(); cur < s.base {
		s.l.SetLimit(min(cur+s.base*rate.Limit(s.cfg.recovery), s.base))
	}
}

type adaptive struct {
	next transport.Transport
	st   *adaptiveState
}

var _ transport.Transport = (*adaptive)(nil)

// Unwrap returns the wrapped transport.
func (t *adaptive) Unwrap() transport.Transport { return t.next }

func (t *adaptive) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
	if t.st.base == rate.Inf {
		return t.next.Send(ctx, env, msg)
	}
	g := t.st.generation()
	res, err := t.next.Send(ctx, env, msg)
	switch {
	case throttled(res, err, t.st.cfg.throttle):
		t.st.slowDown(g)
	case res.Count(transport.Accepted) > 0:
		t.st.speedUp()
	}
	return res, err
}

// throttled reports whether res or err holds a throttling reply.
func throttled(res *transport.Result, err error, is func(int, transport.EnhancedCode) bool) bool {
	if hasThrottle(err, is) {
		return true
	}
	if res == nil {
		return false
	}
	for i := range res.Rcpts {
		rr := &res.Rcpts[i]
		if rr.Reply != nil && is(rr.Reply.Code, rr.Reply.EnhancedCode) {
			return true
		}
		if hasThrottle(rr.Err, is) {
			return true
		}
	}
	return false
}

func hasThrottle(err error, is func(int, transport.EnhancedCode) bool) bool {
	var re *transport.ReplyError
	return err != nil && errors.As(err, &re) && is(re.Code, re.EnhancedCode)
}
