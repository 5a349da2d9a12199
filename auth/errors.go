package auth

import (
	"errors"
	"strings"
)

// ErrNotOffered is returned by an Authenticator when the server advertised
// no mechanism at all (no AUTH in its EHLO reply). Transports report it as
// a missing extension.
var ErrNotOffered = errors.New("auth: server does not offer AUTH")

// ErrNoCommonMechanism matches (with errors.Is) a [*NoCommonMechanismError].
var ErrNoCommonMechanism = errors.New("auth: no common mechanism")

// ErrServerNotVerified is wrapped by the error a mutually authenticating
// mechanism (SCRAM) returns when the server did not prove that it knows the
// password: its signature was wrong or missing. The server may be an
// impostor; the session should be closed.
var ErrServerNotVerified = errors.New("auth: server did not prove its identity")

// NoCommonMechanismError reports that no mechanism the caller allowed can
// be used with the server: none was offered, or those offered cannot be
// used on this connection (Skipped says why).
type NoCommonMechanismError struct {
	Offered []string // the mechanisms the server advertised
	Allowed []string // the mechanisms the caller allowed, in preference order
	// Skipped has one "NAME: reason" entry for each mechanism both offered
	// and allowed that could not be used here, such as "XOAUTH2: no token
	// source" or "EXTERNAL: no TLS client certificate".
	Skipped []string
}

// Error returns "auth: no common mechanism: server offers X Y; allowed Z",
// followed by the skipped mechanisms and their reasons.
func (e *NoCommonMechanismError) Error() string {
	var b strings.Builder
	b.WriteString("auth: no common mechanism: server offers ")
	b.WriteString(strings.Join(e.Offered, " "))
	b.WriteString("; allowed ")
	if len(e.Allowed) == 0 {
		b.WriteString("none")
	} else {
		b.WriteString(strings.Join(e.Allowed, " "))
	}
	for _, s := range e.Skipped {
		b.WriteString("; ")
		b.WriteString(s)
	}
	return b.String()
}

// Is reports whether target is [ErrNoCommonMechanism].
func (e *NoCommonMechanismError) Is(target error) bool {
	return target == ErrNoCommonMechanism
}

// unusableError reports that a mechanism cannot be used with the given
// credentials on the given connection.
type unusableError struct {
	mech   string
	reason string
}

func (e *unusableError) Error() string { return "auth: " + e.mech + ": " + e.reason }

func unusable(mech, reason string) error { return &unusableError{mech, reason} }
