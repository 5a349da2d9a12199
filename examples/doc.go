// Package examples holds runnable programs that show mailwire at work, one
// per directory, each run with "go run ./examples/NAME" from the module's
// root. Each sends through an embedded test server (package smtptest) by
// default, so it needs no network and no account:
//
//   - quickstart: send one message and print the result and the transcript.
//   - submission: STARTTLS and AUTH from configuration files shaped for
//     Gmail-, Microsoft 365- and Amazon SES-style submission services.
//   - relay: a local relay on port 25, with opportunistic TLS or none.
//   - lmtp: delivery to Dovecot over LMTP on a Unix socket.
//   - middleware: tracing, retry and rate limiting around SMTP, with the
//     spans printed to standard output.
//   - custom-auth: a SASL mechanism registered by name from its own
//     package and chosen in a configuration file.
//   - custom-middleware: a middleware registered by name and chosen in a
//     configuration file.
//   - testing: how to test a service of your own with smtptest.
//
// The tests of this directory load every configuration file of the
// examples and build each of its profiles; each example's own test runs
// it.
package examples
