// Package transport delivers mail: the [Transport] interface and its
// contract, the per-recipient [Result], the typed errors and their
// classification ([ErrTransient], [ErrPermanent], [ErrUnknownOutcome]), and
// the transports that implement it: [SMTP] (in clear, with STARTTLS or over
// implicit TLS), [LMTP] (over TCP or a Unix socket), [Failover], [Sendmail]
// and [Func]. [Conn] is one session, for smtplib-style work (VRFY, NOOP,
// RSET, raw commands) and for sending many messages; [Conn.SendBatch] and
// [SMTP.SendBatch] pipeline across transactions.
//
// Standards implemented by the SMTP and LMTP transports:
//
//   - RFC 5321 (SMTP), RFC 6409 (submission), RFC 2033 (LMTP)
//   - RFC 3207 (STARTTLS, required by default), RFC 8314 (implicit TLS)
//   - RFC 2920 (PIPELINING), RFC 3030 (CHUNKING and BINARYMIME)
//   - RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8)
//   - RFC 3461 (DSN), RFC 8689 (REQUIRETLS)
//   - RFC 2034 and RFC 3463 (enhanced status codes)
//   - RFC 4954 (AUTH), with the mechanisms of package auth
//   - RFC 1047 (a lost reply after the final dot is an unknown outcome)
//
// Transports keep idle connections for reuse, as net/http's Transport
// does; see [PoolConfig]. Per-phase hooks for tracing are carried in the
// context by package smtptrace.
package transport
