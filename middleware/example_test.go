package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/middleware"
	"github.com/mailwire/mailwire/transport"
)

// acceptAll stands in for an SMTP transport: it accepts every recipient.
var acceptAll = transport.Func(func(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
	if _, err := io.Copy(io.Discard, msg); err != nil {
		return nil, err
	}
	res := &transport.Result{Reply: &transport.Reply{Code: 250, EnhancedCode: transport.EnhancedCode{2, 0, 0}, Text: "queued"}}
	for _, r := range env.To {
		res.Rcpts = append(res.Rcpts, transport.RcptResult{Addr: r.Addr, Outcome: transport.Accepted, Reply: res.Reply, Attempts: 1})
	}
	return res, nil
})

// named returns a middleware that prints its name around each Send.
func named(name string) middleware.Middleware {
	return func(next transport.Transport) transport.Transport {
		return transport.Func(func(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
			fmt.Println(name, "before")
			res, err := next.Send(ctx, env, msg)
			fmt.Println(name, "after")
			return res, err
		})
	}
}

// The first middleware given to Chain is the outermost: it sees the Send
// first and the result last.
func ExampleChain() {
	t := middleware.Chain(named("outer"), named("inner"))(acceptAll)

	env := &envelope.Envelope{From: "alice@example.org", To: []envelope.Recipient{{Addr: "bob@example.org"}}}
	_, err := t.Send(context.Background(), env, strings.NewReader("Subject: hi\r\n\r\nhello\r\n"))
	fmt.Println("err:", err)
	// Output:
	// outer before
	// inner before
	// inner after
	// outer after
	// err: <nil>
}

func ExampleTimeout() {
	// A server that never answers.
	stalled := transport.Func(func(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
		<-ctx.Done()
		err := &transport.OpError{Op: transport.OpGreeting, Addr: "mx.example.net:25", Err: ctx.Err()}
		res := &transport.Result{}
		for _, r := range env.To {
			res.Rcpts = append(res.Rcpts, transport.RcptResult{Addr: r.Addr, Outcome: transport.TempFailed, Err: err, Attempts: 1})
		}
		return res, err
	})
	t := middleware.Timeout(50 * time.Millisecond)(stalled)

	env := &envelope.Envelope{From: "alice@example.org", To: []envelope.Recipient{{Addr: "bob@example.org"}}}
	_, err := t.Send(context.Background(), env, strings.NewReader("Subject: hi\r\n\r\nhello\r\n"))
	fmt.Println(err)
	fmt.Println("deadline:", errors.Is(err, context.DeadlineExceeded))
	fmt.Println("transient:", errors.Is(err, transport.ErrTransient))
	// Output:
	// transport: greeting mx.example.net:25: context deadline exceeded
	// deadline: true
	// transient: false
}

func ExampleLogging() {
	// Drop the time and the duration so that the output is reproducible.
	h := slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "duration" {
				return slog.Attr{}
			}
			return a
		},
	})
	t := middleware.Logging(slog.New(h))(acceptAll)

	env := &envelope.Envelope{From: "alice@example.org", To: []envelope.Recipient{{Addr: "bob@example.org"}, {Addr: "carol@example.org"}}}
	t.Send(context.Background(), env, strings.NewReader("Subject: hi\r\n\r\nhello\r\n"))
	// Output:
	// {"level":"INFO","msg":"smtp send","outcome":"accepted","rcpt":{"total":2,"accepted":2,"transient":0,"permanent":0,"unknown":0},"reply_code":250,"enhanced_code":"2.0.0"}
}
