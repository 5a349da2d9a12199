// Package ratelimit provides middleware that limit how fast and how many
// Sends reach a transport: [PerMessage] and [PerRecipient] wait for tokens
// from a rate limiter, [Concurrency] caps the Sends in flight, and
// [Adaptive] slows a limiter down when the server answers with throttling
// replies.
//
// The limits are held by the values given to the constructors (a
// *rate.Limiter from golang.org/x/time/rate, or the semaphore Concurrency
// creates), so they hold across goroutines, connections and every transport
// wrapped with the same Middleware. Every wait honours ctx.
//
// Placed inside retry.New, the limits apply to each attempt, so retries
// cannot exceed them either.
//
// When a wait fails (ctx ends, or the limiter refuses), Send does not reach
// the transport: it returns a Result whose recipients are all NotAttempted,
// and the error: context.Cause(ctx) if ctx ended, otherwise the limiter's
// error. Neither matches transport.ErrTransient, so it is not retried.
package ratelimit
