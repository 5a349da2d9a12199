// Package auth provides SASL authentication (RFC 4422) for the SMTP and LMTP
// transports (RFC 4954), on github.com/emersion/go-sasl's Client interface.
//
// Mechanisms are registered by name, like database/sql drivers: [Register]
// stores a [NewFunc] constructor, [Lookup] finds one and [Mechanisms] lists
// them. Every built-in is also an exported NewFunc, usable without a name:
//
//   - PLAIN (RFC 4616): [Plain]
//   - LOGIN (draft-murchison-sasl-login): [Login]
//   - CRAM-MD5 (RFC 2195): [CRAMMD5]
//   - XOAUTH2 (Google and Microsoft): [XOAUTH2]
//   - OAUTHBEARER (RFC 7628): [OAuthBearer]
//   - EXTERNAL (RFC 4422 appendix A): [External]
//   - ANONYMOUS (RFC 4505): [Anonymous]
//   - SCRAM-SHA-1 (RFC 5802): [SCRAMSHA1]
//   - SCRAM-SHA-256 (RFC 7677): [SCRAMSHA256]
//   - SCRAM-SHA-512 (draft-melnikov-scram-sha-512): [SCRAMSHA512]
//   - their -PLUS forms with channel binding (RFC 5802, RFC 5929,
//     RFC 9266): [SCRAMSHA1Plus], [SCRAMSHA256Plus], [SCRAMSHA512Plus]
//
// A [Config] is an [Authenticator] that picks the strongest mechanism both
// the caller allows and the server offers ([DefaultPreference] gives the
// order) and refuses to expose a credential on an unencrypted connection
// unless the connection is a Unix socket or the caller set
// [Config.AllowInsecure]. [New] builds an Authenticator for exactly one
// named mechanism, with the same checks.
//
// [Credentials] never print their secrets: fmt, slog and the errors of this
// package show "[redacted]" instead. See docs/auth.md for the rules the
// transports follow and for how to write a mechanism.
package auth
