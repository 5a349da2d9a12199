package ratelimit_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/middleware"
	"github.com/mailwire/mailwire/middleware/ratelimit"
	"github.com/mailwire/mailwire/middleware/retry"
	"github.com/mailwire/mailwire/transport"
)

func env(addrs ...string) *envelope.Envelope {
	e := &envelope.Envelope{From: "sender@example.org"}
	for _, a := range addrs {
		e.To = append(e.To, envelope.Recipient{Addr: a})
	}
	return e
}

// accept is a transport that accepts every recipient.
func accept(ctx context.Context, e *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
	res := &transport.Result{Rcpts: make([]transport.RcptResult, len(e.To))}
	for i, r := range e.To {
		res.Rcpts[i] = transport.RcptResult{Addr: r.Addr, Outcome: transport.Accepted, Attempts: 1}
	}
	return res, nil
}

// recorder accepts everything and records when each Send reached it.
type recorder struct {
	mu    sync.Mutex
	times []time.Time
	rcpts int
}

func (r *recorder) Send(ctx context.Context, e *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
	r.mu.Lock()
	r.times = append(r.times, time.Now())
	r.rcpts += len(e.To)
	r.mu.Unlock()
	return accept(ctx, e, msg)
}

// maxInWindow returns the most events in any window [t, t+w).
func maxInWindow(times []time.Time, w time.Duration) int {
	times = slices.Clone(times)
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	most := 0
	for i, t := range times {
		n := 0
		for _, u := range times[i:] {
			if u.Sub(t) >= w {
				break
			}
			n++
		}
		most = max(most, n)
	}
	return most
}

func TestPerMessageHoldsAcrossGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			senders = 20
			each    = 10
			burst   = 5
			perSec  = 10
		)
		lim := rate.NewLimiter(perSec, burst)
		rec := &recorder{}
		mw := ratelimit.PerMessage(lim)
		// Two transports wrapped by the same Middleware share the limit,
		// as two connections to one server would.
		a, b := mw(rec), mw(rec)
		start := time.Now()
		var wg sync.WaitGroup
		for i := range senders {
			tr := a
			if i%2 == 1 {
				tr = b
			}
			wg.Go(func() {
				for range each {
					if _, err := tr.Send(t.Context(), env("a@example.org"), strings.NewReader("x")); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		if len(rec.times) != senders*each {
			t.Fatalf("%d sends, want %d", len(rec.times), senders*each)
		}
		for _, w := range []time.Duration{time.Second / 2, time.Second, 3 * time.Second, 10 * time.Second} {
			limit := burst + int(perSec*w.Seconds())
			if got := maxInWindow(rec.times, w); got > limit {
				t.Errorf("%d sends within %v, want at most %d", got, w, limit)
			}
		}
		// 200 sends, 5 at once, then 10 a second: the last at 19.5 s.
		if got, want := time.Since(start), 19500*time.Millisecond; got != want {
			t.Errorf("took %v, want %v", got, want)
		}
	})
}

func TestPerRecipient(t *testing.T) {
	t.Run("chunks beyond the burst", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lim := rate.NewLimiter(1, 2)
			rec := &recorder{}
			tr := ratelimit.PerRecipient(lim)(rec)
			start := time.Now()
			_, err := tr.Send(t.Context(), env("a@x", "b@x", "c@x", "d@x", "e@x"), strings.NewReader("x"))
			if err != nil {
				t.Fatalf("Send err = %v, want the wait split into chunks of the burst", err)
			}
			// 2 tokens at once, 2 more after 2 s, the last after 1 s more.
			if got := time.Since(start); got != 3*time.Second {
				t.Errorf("waited %v, want 3s", got)
			}
		})
	})
	t.Run("rate counts recipients", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lim := rate.NewLimiter(10, 10)
			rec := &recorder{}
			tr := ratelimit.PerRecipient(lim)(rec)
			start := time.Now()
			for range 5 {
				tr.Send(t.Context(), env("a@x", "b@x", "c@x", "d@x"), strings.NewReader("x"))
			}
			// 20 recipients: 10 at once, 10 more at 10 a second.
			if got := time.Since(start); got != time.Second {
				t.Errorf("took %v, want 1s", got)
			}
		})
	})
	t.Run("limiter without burst", func(t *testing.T) {
		var got []int
		l := limiterFunc(func(ctx context.Context, n int) error { got = append(got, n); return nil })
		ratelimit.PerRecipient(l)(&recorder{}).Send(t.Context(), env("a@x", "b@x", "c@x"), strings.NewReader("x"))
		if !slices.Equal(got, []int{3}) {
			t.Errorf("WaitN calls = %v, want [3]", got)
		}
	})
}

type limiterFunc func(ctx context.Context, n int) error

func (f limiterFunc) WaitN(ctx context.Context, n int) error { return f(ctx, n) }

func checkNotAttempted(t *testing.T, res *transport.Result, e *envelope.Envelope, err error) {
	t.Helper()
	if res == nil || len(res.Rcpts) != len(e.To) {
		t.Fatalf("Result = %+v, want one RcptResult per recipient", res)
	}
	for i, rr := range res.Rcpts {
		if rr.Addr != e.To[i].Addr || rr.Outcome != transport.NotAttempted || rr.Err != err {
			t.Errorf("Rcpts[%d] = %+v, want %s NotAttempted with the error", i, rr, e.To[i].Addr)
		}
	}
	if errors.Is(err, transport.ErrTransient) {
		t.Errorf("err = %v matches ErrTransient; a failed wait must not be retried", err)
	}
}

func TestWaitHonoursContext(t *testing.T) {
	t.Run("cancel", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lim := rate.NewLimiter(rate.Every(time.Minute), 1)
			rec := &recorder{}
			tr := ratelimit.PerMessage(lim)(rec)
			tr.Send(t.Context(), env("a@x"), strings.NewReader("x")) // spends the token
			ctx, cancel := context.WithCancelCause(t.Context())
			cause := errors.New("stop")
			e := env("b@x", "c@x")
			var (
				res *transport.Result
				err error
			)
			done := make(chan struct{})
			start := time.Now()
			go func() {
				defer close(done)
				res, err = tr.Send(ctx, e, strings.NewReader("x"))
			}()
			synctest.Wait()
			cancel(cause)
			<-done
			if time.Since(start) != 0 || !errors.Is(err, cause) {
				t.Errorf("Send = %v after %v, want the cause at once", err, time.Since(start))
			}
			checkNotAttempted(t, res, e, err)
			if len(rec.times) != 1 {
				t.Errorf("transport reached %d times, want 1", len(rec.times))
			}
		})
	})
	t.Run("deadline too close", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lim := rate.NewLimiter(rate.Every(time.Minute), 1)
			tr := ratelimit.PerMessage(lim)(&recorder{})
			tr.Send(t.Context(), env("a@x"), strings.NewReader("x"))
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			e := env("b@x")
			start := time.Now()
			res, err := tr.Send(ctx, e, strings.NewReader("x"))
			if err == nil || time.Since(start) != 0 {
				t.Errorf("Send = %v after %v, want a failure at once", err, time.Since(start))
			}
			checkNotAttempted(t, res, e, err)
		})
	})
}

func TestConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit, senders = 3, 10
		var inFlight, most atomic.Int32
		release := make(chan struct{})
		block := transport.Func(func(ctx context.Context, e *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
			n := inFlight.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			<-release
			inFlight.Add(-1)
			return accept(ctx, e, msg)
		})
		mw := ratelimit.Concurrency(limit)
		a, b := mw(block), mw(block) // one limit for both
		var wg sync.WaitGroup
		for i := range senders {
			tr := a
			if i%2 == 1 {
				tr = b
			}
			wg.Go(func() { tr.Send(t.Context(), env("a@x"), strings.NewReader("x")) })
		}
		for done := 0; done < senders; done++ {
			synctest.Wait()
			want := int32(min(limit, senders-done))
			if got := inFlight.Load(); got != want {
				t.Fatalf("%d in flight, want %d", got, want)
			}
			release <- struct{}{}
		}
		wg.Wait()
		if most.Load() != limit {
			t.Errorf("at most %d in flight, want %d", most.Load(), limit)
		}
	})
}

func TestConcurrencyCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		block := transport.Func(func(ctx context.Context, e *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
			<-release
			return accept(ctx, e, msg)
		})
		tr := ratelimit.Concurrency(1)(block)
		go tr.Send(t.Context(), env("a@x"), strings.NewReader("x"))
		synctest.Wait()
		ctx, cancel := context.WithCancel(t.Context())
		e := env("b@x")
		var (
			res *transport.Result
			err error
		)
		done := make(chan struct{})
		go func() {
			defer close(done)
			res, err = tr.Send(ctx, e, strings.NewReader("x"))
		}()
		synctest.Wait()
		cancel()
		<-done
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		checkNotAttempted(t, res, e, err)
		close(release)
	})
}

func TestConstructorsPanic(t *testing.T) {
	for name, f := range map[string]func(){
		"PerMessage(nil)":   func() { ratelimit.PerMessage(nil) },
		"PerRecipient(nil)": func() { ratelimit.PerRecipient(nil) },
		"Concurrency(0)":    func() { ratelimit.Concurrency(0) },
		"Adaptive(nil)":     func() { ratelimit.Adaptive(nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			f()
		}()
	}
}

// throttling answers 421 4.7.0 to the whole transaction while throttle is
// set, and accepts otherwise.
type throttling struct {
	throttle atomic.Bool
	gate     chan struct{} // if not nil, each Send waits for it
}

func (s *throttling) Send(ctx context.Context, e *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
	if s.gate != nil {
		<-s.gate
	}
	if !s.throttle.Load() {
		return accept(ctx, e, msg)
	}
	err := &transport.OpError{Op: transport.OpMail, Err: &transport.ReplyError{Code: 421, EnhancedCode: transport.EnhancedCode{4, 7, 0}, Message: "try again later"}}
	res := &transport.Result{Rcpts: make([]transport.RcptResult, len(e.To))}
	for i, r := range e.To {
		res.Rcpts[i] = transport.RcptResult{Addr: r.Addr, Outcome: transport.TempFailed, Err: err, Attempts: 1}
	}
	return res, err
}

func TestAdaptive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lim := rate.NewLimiter(10, 1)
		s := &throttling{}
		tr := middleware.Chain(ratelimit.PerMessage(lim), ratelimit.Adaptive(lim, ratelimit.WithRecovery(0.25)))(s)
		send := func() error {
			_, err := tr.Send(t.Context(), env("a@x"), strings.NewReader("x"))
			return err
		}

		s.throttle.Store(true)
		send()
		if got := lim.Limit(); got != 5 {
			t.Errorf("after one 421 4.7.0, limit = %v, want 5", got)
		}
		send()
		if got := lim.Limit(); got != 2.5 {
			t.Errorf("after two, limit = %v, want 2.5", got)
		}
		for range 20 {
			send()
		}
		if got := lim.Limit(); got != 0.1 {
			t.Errorf("after many, limit = %v, want the floor 0.1", got)
		}

		s.throttle.Store(false)
		var got []rate.Limit
		for range 5 {
			send()
			got = append(got, lim.Limit())
		}
		if want := []rate.Limit{2.6, 5.1, 7.6, 10, 10}; !slices.Equal(got, want) {
			t.Errorf("recovering, limits = %v, want %v", got, want)
		}
	})
}

func TestAdaptiveOncePerWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lim := rate.NewLimiter(8, 8)
		s := &throttling{gate: make(chan struct{})}
		s.throttle.Store(true)
		tr := middleware.Chain(ratelimit.PerMessage(lim), ratelimit.Adaptive(lim))(s)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() { tr.Send(t.Context(), env("a@x"), strings.NewReader("x")) })
		}
		synctest.Wait() // all four in flight
		close(s.gate)
		wg.Wait()
		if got := lim.Limit(); got != 4 {
			t.Errorf("limit = %v, want 4: Sends in flight together slow down once", got)
		}
	})
}

func TestAdaptiveUnderRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lim := rate.NewLimiter(1, 1)
		calls := 0
		f := transport.Func(func(ctx context.Context, e *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
			calls++
			if calls == 1 {
				err := &transport.ReplyError{Code: 450, EnhancedCode: transport.EnhancedCode{4, 7, 1}, Message: "slow down"}
				return &transport.Result{Rcpts: []transport.RcptResult{
					{Addr: e.To[0].Addr, Outcome: transport.Accepted, Attempts: 1},
					{Addr: e.To[1].Addr, Outcome: transport.TempFailed, Reply: err.Reply(), Err: err, Attempts: 1},
				}}, nil
			}
			return accept(ctx, e, msg)
		})
		tr := middleware.Chain(
			retry.New(retry.WithBackoff(func(int) time.Duration { return 0 })),
			ratelimit.PerMessage(lim),
			ratelimit.Adaptive(lim),
		)(f)
		start := time.Now()
		if _, err := tr.Send(t.Context(), env("a@x", "b@x"), strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
		// The 450 4.7.1 halved the rate, so the retry waited 2 s, not 1 s.
		if got := time.Since(start); got != 2*time.Second {
			t.Errorf("retry after %v, want 2s", got)
		}
	})
}

func TestIsThrottle(t *testing.T) {
	tests := []struct {
		code int
		enh  transport.EnhancedCode
		want bool
	}{
		{421, transport.EnhancedCode{4, 7, 0}, true},
		{450, transport.EnhancedCode{4, 7, 1}, true},
		{451, transport.EnhancedCode{4, 7, 28}, true},
		{421, transport.EnhancedCode{}, false},
		{450, transport.EnhancedCode{4, 2, 0}, false},
		{452, transport.EnhancedCode{4, 7, 0}, false},
		{550, transport.EnhancedCode{5, 7, 1}, false},
	}
	for _, tt := range tests {
		if got := ratelimit.IsThrottle(tt.code, tt.enh); got != tt.want {
			t.Errorf("IsThrottle(%d, %v) = %v, want %v", tt.code, tt.enh, got, tt.want)
		}
	}
}

func TestUnwrap(t *testing.T) {
	base := transport.Func(accept)
	lim := rate.NewLimiter(1, 1)
	for name, mw := range map[string]middleware.Middleware{
		"PerMessage":   ratelimit.PerMessage(lim),
		"PerRecipient": ratelimit.PerRecipient(lim),
		"Concurrency":  ratelimit.Concurrency(1),
		"Adaptive":     ratelimit.Adaptive(lim),
	} {
		u, ok := mw(base).(interface{ Unwrap() transport.Transport })
		if !ok || u.Unwrap() == nil {
			t.Errorf("%s: no Unwrap", name)
		}
	}
}
