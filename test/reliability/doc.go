// Package reliability holds mailwire's reliability and security tests: fault
// sweeps (a connection cut after every byte, every reply stalled past its
// deadline, every command answered with every class of reply) over every
// transport mode, attack cases that must be refused before a byte is
// written, the credential and secret checks, the whole-session fuzz target
// FuzzClientSession, and, with the interop servers running, the delivery
// ledger. The tests use the transports' public API only.
//
// The tests log their figures on lines starting with "FIGURE "; see
// docs/security.md for the command that collects them.
package reliability
