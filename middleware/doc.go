// Package middleware composes behaviour around a [transport.Transport]'s Send:
// timeouts and structured logging here, retries in [retry], rate limits in
// [ratelimit] and OpenTelemetry tracing and metrics in [otelsmtp].
//
// A [Middleware] is a function from Transport to Transport, the shape of
// net/http handler middleware. The Transport it returns keeps the whole
// contract documented on [transport.Transport]: it never modifies the
// caller's envelope (it clones one before changing it), it returns exactly
// one [transport.RcptResult] per recipient, in envelope order, whatever the
// error, and it is safe for concurrent use. It also has an
// Unwrap() transport.Transport method returning the transport it wraps, so
// that [transport.CloseIdleConnections] reaches a pooled transport through
// any number of middleware.
//
// [Chain] composes middleware. Its first argument is the outermost: it sees
// each Send first and its result last. The recommended order is
//
//	middleware.Chain(
//		otelsmtp.New(),           // one span for the whole Send, retries included
//		middleware.Logging(log),  // one record per Send, after retries
//		retry.New(),              // retries only what failed transiently
//		ratelimit.Concurrency(n), // sessions in flight
//		ratelimit.PerMessage(l),  // every attempt waits for the limiter
//		ratelimit.Adaptive(l),    // slows l down on throttling replies
//		middleware.Timeout(d),    // bounds each attempt
//	)(smtp)
//
// docs/middleware.md explains why, and how to write a middleware.
//
// [retry]: https://pkg.go.dev/github.com/mailwire/mailwire/middleware/retry
// [ratelimit]: https://pkg.go.dev/github.com/mailwire/mailwire/middleware/ratelimit
// [otelsmtp]: https://pkg.go.dev/github.com/mailwire/mailwire/middleware/otelsmtp
package middleware
