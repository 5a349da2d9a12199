package ratelimit_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/middleware"
	"github.com/mailwire/mailwire/middleware/ratelimit"
	"github.com/mailwire/mailwire/transport"
)

// Ten goroutines share one limit of 200 messages a second with bursts of 5:
// the limiter, not the goroutines, decides the pace.
func ExamplePerMessage() {
	lim := rate.NewLimiter(200, 5)
	var mu sync.Mutex
	sent := 0
	server := transport.Func(func(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
		mu.Lock()
		sent++
		mu.Unlock()
		return accept(ctx, env, msg)
	})
	t := ratelimit.PerMessage(lim)(server)

	start := time.Now()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for range 3 {
				env := &envelope.Envelope{From: "alice@example.org", To: []envelope.Recipient{{Addr: "bob@example.org"}}}
				t.Send(context.Background(), env, strings.NewReader("Subject: hi\r\n\r\nhello\r\n"))
			}
		})
	}
	wg.Wait()
	// 30 messages: 5 at once, 25 more at 200 a second, so at least 125 ms.
	fmt.Println("sent:", sent)
	fmt.Println("at least 120ms:", time.Since(start) >= 120*time.Millisecond)
	// Output:
	// sent: 30
	// at least 120ms: true
}

// Concurrency caps the Sends in flight, whatever the number of goroutines.
func ExampleConcurrency() {
	var mu sync.Mutex
	inFlight, most := 0, 0
	server := transport.Func(func(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		time.Sleep(time.Millisecond)
		mu.Lock()
		inFlight--
		mu.Unlock()
		return accept(ctx, env, msg)
	})
	t := ratelimit.Concurrency(2)(server)

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			env := &envelope.Envelope{From: "alice@example.org", To: []envelope.Recipient{{Addr: "bob@example.org"}}}
			t.Send(context.Background(), env, strings.NewReader("Subject: hi\r\n\r\nhello\r\n"))
		})
	}
	wg.Wait()
	fmt.Println("most in flight:", most)
	// Output:
	// most in flight: 2
}

// Adaptive halves the rate when the server answers 421 4.7.0, and recovers
// it after accepted sends.
func ExampleAdaptive() {
	lim := rate.NewLimiter(100, 1)
	throttle := true
	server := transport.Func(func(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
		if throttle {
			err := &transport.OpError{Op: transport.OpMail, Addr: "mx.example.net:25",
				Err: &transport.ReplyError{Code: 421, EnhancedCode: transport.EnhancedCode{4, 7, 0}, Message: "try again later"}}
			res := &transport.Result{Rcpts: []transport.RcptResult{{Addr: env.To[0].Addr, Outcome: transport.TempFailed, Err: err, Attempts: 1}}}
			return res, err
		}
		return accept(ctx, env, msg)
	})
	t := middleware.Chain(
		ratelimit.PerMessage(lim),
		ratelimit.Adaptive(lim, ratelimit.WithRecovery(0.25)),
	)(server)
	send := func() {
		env := &envelope.Envelope{From: "alice@example.org", To: []envelope.Recipient{{Addr: "bob@example.org"}}}
		t.Send(context.Background(), env, strings.NewReader("Subject: hi\r\n\r\nhello\r\n"))
	}

	send()
	fmt.Println("after a 421 4.7.0:", lim.Limit())
	throttle = false
	send()
	fmt.Println("after an accepted send:", lim.Limit())
	send()
	fmt.Println("after another:", lim.Limit())
	// Output:
	// after a 421 4.7.0: 50
	// after an accepted send: 75
	// after another: 100
}
