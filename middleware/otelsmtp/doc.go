// Package otelsmtp provides a middleware that traces each Send with an
// OpenTelemetry span and records metrics about it. It is the only package of
// mailwire that imports OpenTelemetry, and it imports the API only: the
// application chooses and configures the SDK.
//
// # Span
//
// Each Send gets one client span (SpanKindClient) named "smtp.send". It
// carries the attributes given with [WithAttributes] and:
//
//	smtp.recipients.count      recipients in the envelope
//	smtp.recipients.refused    recipients not accepted
//	smtp.reply.code            final reply (end of data) on success, failing reply on failure
//	smtp.reply.enhanced_code   its RFC 3463 code, such as "4.2.0", when there is one
//	smtp.attempts              attempts made, when a retry middleware runs inside
//	error.type                 on failure: "smtp.4xx", "smtp.5xx", "smtp.unknown_outcome",
//	                           "context.DeadlineExceeded", "context.Canceled" or a Go type name
//
// and, of the last connection the Send dialed or took from a pool:
// server.address, server.port, network.transport ("tcp" or "unix") and
// smtp.connection.reused, set as soon as the transport reports the
// connection, through its ConnOpened hook for a new one (so that a Send
// failing in TLS or AUTH still names the server) or its GotConn hook; and,
// once GotConn has reported a usable session on it, smtp.security (the
// transport's security mode) and, over TLS, tls.protocol.version ("1.2",
// "1.3"). The server's address is the one the transport dialed, never a
// mailbox's.
//
// A failed Send sets the span status to Error, with error.type as its
// description. The error's text is not recorded: it quotes addresses and
// server replies, which may quote addresses too.
//
// # Events
//
// The phases of the session are span events, not child spans: a Send has a
// dozen short, strictly sequential phases, and events keep the trace to one
// span per Send while still giving each phase's time and reply. The
// middleware installs hooks in the context (package smtptrace) that the
// transport calls; an event is added when a phase ends, named "smtp." plus
// the phase with underscores ("smtp.dial", "smtp.tls", "smtp.hello",
// "smtp.auth", "smtp.mail", "smtp.rcpt", "smtp.data", "smtp.end_of_data",
// "smtp.reset", "smtp.quit"), with these attributes when they apply:
//
//	smtp.phase.duration   seconds since the phase started
//	smtp.rcpt.index       the recipient's position in the attempt's envelope, never its
//	                      address (a retry sends only the recipients it retries)
//	smtp.reply.code, smtp.reply.enhanced_code
//	smtp.command          "EHLO", "LHLO", "DATA", "BDAT", the AUTH mechanism
//	smtp.data.bytes       message bytes written, for smtp.data
//	error.type            if the phase failed
//
// A retry middleware inside this one reports each attempt:
// "smtp.attempt.start" and "smtp.attempt.done" events with smtp.attempt
// (1 for the first) and, for a failed attempt, error.type. Each connection
// the transport gets adds an "smtp.connection" event with
// smtp.connection.reused.
//
// # Metrics
//
//	smtp.client.send.duration        histogram, s: duration of Send
//	smtp.client.recipients           counter, {recipient}: recipients by smtp.outcome
//	                                 (accepted, transient, permanent, unknown, not_attempted)
//	smtp.client.data.sent            counter, By: message bytes written, over all attempts
//	smtp.client.connection.opened    counter, {connection}: connections dialed
//
// Every measurement carries the [WithAttributes] attributes and, once a
// connection was dialed or got, server.address and server.port of the last
// one (even when the Send failed before the session on it was usable, in
// TLS or AUTH); send.duration also carries error.type on failure, and
// connection.opened network.transport.
//
// # Privacy
//
// Addresses, subjects, bodies, reply texts and credentials are never
// recorded, in any attribute, event or metric.
//
// No context is propagated to the server: SMTP has no standard header for
// it, and the message is already formed when it reaches a transport.
package otelsmtp
