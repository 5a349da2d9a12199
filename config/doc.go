// Package config builds transports from configuration files: a YAML (or
// JSON) file names profiles, each a transport and a chain of middleware,
// and [Config.Transport] returns one of them ready to send.
//
//	default: work
//	profiles:
//	  work:
//	    transport:
//	      kind: smtp
//	      address: smtp.example.org:587
//	      security: starttls
//	      auth:
//	        mechanism: PLAIN
//	        username: alice
//	        password_env: SMTP_PASSWORD
//	    middleware:
//	      - name: retry
//	        with: {max_attempts: 5}
//
// docs/config.md is the reference of every key; a test checks it against
// the code.
//
// # Strict decoding
//
// An unknown or duplicate key, a value of the wrong type, a bad duration,
// an unknown transport kind, middleware or SASL mechanism, a missing
// secret: each is an [*Error] that names the file, the line and the key,
//
//	mail.yaml:9: profiles.work.transport.auth.mechanism: unknown mechanism "PLAN" (forgotten import?)
//
// An unknown key is quoted only when it is close to a key of its mapping,
// as a typing mistake is ("unknown key; did you mean address?"). Any other
// unknown key may be a password typed where a key belongs: the error then
// names the line and the mapping, not the key, and lists the keys the
// mapping takes.
//
// [Parse] and [Load] check the whole file, every profile included: they
// call each profile's kind and middleware once, with [Params.Checking]
// true, and discard what they build. [Config.Transport] then builds the
// profile it is asked for and reads its secrets and files, so a profile
// whose password is not in the environment does not stop another from
// being used.
//
// # Secrets
//
// Passwords and tokens come from an environment variable (password_env) or
// a file (password_file); writing one in the file itself needs an explicit
// mark (password: {value: "...", insecure_literal: true}). See [Secret].
// No secret appears in an error, or when a [Config] or a [Secret] is
// printed or logged.
//
// # Extending the vocabulary
//
// Transport kinds and middleware are registered by name, as SASL
// mechanisms are with package auth: [RegisterTransport] and
// [RegisterMiddleware], called from the init function of the package that
// provides them, make a kind or a middleware available to every
// configuration file of a program that imports the package. The factories
// receive their parameters as [Params], which decode strictly with line
// numbers. This package registers the built-ins: the kinds smtp, smtps,
// lmtp, failover and sendmail, and the middleware retry, ratelimit,
// timeout, logging and tracing (package otelsmtp).
//
// The configuration is a convenience over the typed API: everything it
// builds can be built in Go without it.
package config
