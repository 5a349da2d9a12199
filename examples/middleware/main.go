// Middleware sends a message through a chain of middleware around an SMTP
// transport, tracing, retry and rate limiting, and prints the OpenTelemetry
// spans to standard output with the SDK's stdouttrace exporter.
//
// The embedded server refuses one of the two recipients once with a
// temporary failure (451), so the retry middleware sends the message again
// to that recipient alone, and the span shows both attempts as events. No
// address is recorded in the span.
//
//	go run ./examples/middleware                           # the chain built in Go
//	go run ./examples/middleware -config examples/middleware/middleware.yaml   # the same chain from a file
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/time/rate"

	"github.com/mailwire/mailwire/config"
	"github.com/mailwire/mailwire/dialer"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/middleware"
	"github.com/mailwire/mailwire/middleware/otelsmtp"
	"github.com/mailwire/mailwire/middleware/ratelimit"
	"github.com/mailwire/mailwire/middleware/retry"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

func main() {
	if err := run(context.Background(), os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "middleware:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("middleware", flag.ContinueOnError)
	file := fs.String("config", "", "build the chain from this configuration file instead of in Go")
	if err := fs.Parse(args); err != nil {
		return err
	}

	// The server: STARTTLS, and a temporary failure for carol, once.
	srv := smtptest.NewUnstartedServer()
	srv.Security = transport.StartTLS
	var refused atomic.Bool
	srv.Rcpt = func(to string, _ smtptest.RcptOptions) error {
		if to == "carol@example.org" && refused.CompareAndSwap(false, true) {
			return &transport.ReplyError{Code: 451, EnhancedCode: transport.EnhancedCode{4, 3, 0}, Message: "try again later"}
		}
		return nil
	}
	srv.Start()
	defer srv.Close()

	// The application owns the OpenTelemetry SDK: spans go to out as JSON,
	// each when it ends.
	exp, err := stdouttrace.New(stdouttrace.WithWriter(out), stdouttrace.WithPrettyPrint(), stdouttrace.WithoutTimestamps())
	if err != nil {
		return err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())

	var tr transport.Transport
	if *file == "" {
		smtp := &transport.SMTP{Addr: srv.Addr, TLSConfig: srv.ClientTLSConfig()}
		lim := rate.NewLimiter(5, 1) // 5 messages a second
		tr = middleware.Chain(
			otelsmtp.New(otelsmtp.WithTracerProvider(tp)), // outermost: one span per Send, attempts as events
			retry.New( // retries only the recipients that failed transiently
				retry.WithMaxAttempts(3),
				retry.WithBackoff(retry.Exponential(50*time.Millisecond, 200*time.Millisecond)),
				retry.WithNotify(func(attempt int, err error, _ time.Duration) {
					fmt.Fprintf(out, "attempt %d: %v; retrying\n", attempt, err)
				}),
			),
			ratelimit.PerMessage(lim),          // every attempt waits for a token
			middleware.Timeout(30*time.Second), // innermost: bounds each attempt
		)(smtp)
	} else {
		// The tracing middleware of a configuration file uses the global
		// providers.
		otel.SetTracerProvider(tp)
		cfg, err := config.Load(*file)
		if err != nil {
			return err
		}
		tr, err = cfg.Transport("", config.WithAdjust(func(t transport.Transport) {
			if s, ok := t.(*transport.SMTP); ok {
				s.Dialer = dialer.Fixed("tcp", srv.Addr, nil)
				s.TLSConfig = srv.ClientTLSConfig()
			}
		}))
		if err != nil {
			return err
		}
	}
	defer transport.CloseIdleConnections(tr)

	env := envelope.New("alice@example.org", "bob@example.org", "carol@example.org")
	msg := "From: alice@example.org\r\nTo: bob@example.org, carol@example.org\r\nSubject: middleware example\r\n\r\nHello.\r\n"
	// A *strings.Reader is an io.Seeker: the retry middleware rewinds it
	// if an attempt failed after the data.
	res, err := tr.Send(ctx, env, strings.NewReader(msg))
	if err != nil {
		return err
	}
	for _, r := range res.Rcpts {
		fmt.Fprintf(out, "%s: %s after %d attempt(s)\n", r.Addr, r.Outcome, r.Attempts)
	}
	copies := map[string]int{}
	for _, m := range srv.Messages() {
		for _, to := range m.To {
			copies[to]++
		}
	}
	fmt.Fprintf(out, "copies received: bob %d, carol %d\n", copies["bob@example.org"], copies["carol@example.org"])
	return nil
}
