// Package interoptest gives tests access to the private interop servers that
// scripts/interop/start.sh runs on loopback: a Postfix instance (plain SMTP
// with STARTTLS offered, submission with STARTTLS and AUTH required, implicit
// TLS, and listeners that present bad certificates or only old TLS versions),
// Dovecot (LMTP on a Unix socket and on TCP, with a quota, and its submission
// service for SCRAM), the aiosmtpd delivery ledger and Postfix's smtp-sink.
//
// start.sh writes an env file of KEY='value' lines describing every address,
// socket, certificate, maildir root and test user; [Env] reads it into a
// [Config]. Without servers, interop tests skip; in CI, where .ci/run sets
// MAILWIRE_INTEROP=1, a missing server fails the run instead:
//
//	func TestDeliverPostfix(t *testing.T) {
//		cfg := interoptest.Env(t) // skips when no servers run
//		marker := interoptest.Marker(t)
//		// ... send a message carrying "Message-ID: <marker>" to
//		// cfg.Alice.Address(cfg.Domain) through cfg.PostfixSMTP ...
//		got := interoptest.WaitMaildir(t, cfg.VirtualMaildir("alice"), marker, 10*time.Second)
//		if err := interoptest.CompareDelivered(got, original); err != nil {
//			t.Fatal(err)
//		}
//	}
//
// The servers are shared by every test package that `go test ./...` runs in
// parallel, so each test must give its messages a unique marker (see
// [Marker]) and look only for its own messages; never count everything in a
// maildir or in the ledger.
//
// Recipient triggers the servers apply (see scripts/interop/start.sh and
// ledger.py):
//
//   - Postfix (domain interop.test): reject@ (or reject+tag@) answers
//     550 5.7.1 at RCPT, tempfail@ answers 450 4.2.0, an unknown user 550 5.1.1,
//     sender badsender@ 553 5.7.1 at MAIL; other domains 554 5.7.1 (no relay).
//   - Dovecot LMTP (domain lmtp.interop.test): the quota user dave refuses a
//     message over 1 KiB with 552 5.2.2 after DATA; an unknown user 550 at RCPT.
//   - Ledger (any domain): local parts starting with tempfail answer 451,
//     reject 550; flaky451-N-token answers 451 N times then accepts, and
//     flaky421-N-token answers 421 and closes the connection N times.
//
// Only the standard library is used, so any package's tests may import it.
package interoptest
