package auth

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
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
	Offered []string // the mechanisms the server advertised, all of them
	Allowed []string // the mechanisms the caller allowed, in preference order
	// Skipped has one "NAME: reason" entry for each mechanism both offered
	// and allowed that could not be used here, such as "XOAUTH2: no token
	// source" or "EXTERNAL: no TLS client certificate".
	Skipped []string
}

// Error returns "auth: no common mechanism: server offers X Y; allowed Z",
// followed by the skipped mechanisms and their reasons. The server's list
// is quoted only in part, since a hostile server can make it as long as it
// likes: at most 16 names, each escaped if it holds anything but printable
// ASCII and cut to 40 bytes, then "… and N more". Offered keeps the whole
// list.
func (e *NoCommonMechanismError) Error() string {
	var b strings.Builder
	b.WriteString("auth: no common mechanism: server offers ")
	writeMechanismList(&b, e.Offered)
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

// Bounds on what an error message quotes of a mechanism list a server sent.
const (
	maxQuotedMechanisms   = 16
	maxQuotedMechanismLen = 40
)

// writeMechanismList writes names, space separated, within the bounds.
func writeMechanismList(b *strings.Builder, names []string) {
	if len(names) == 0 {
		b.WriteString("none")
		return
	}
	for i, name := range names {
		if i == maxQuotedMechanisms {
			fmt.Fprintf(b, " … and %d more", len(names)-i)
			return
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(quoteMechanism(name))
	}
}

// quoteMechanism returns name as an error message shows it: as is if it is
// printable ASCII, else Go-quoted with everything else escaped; either way
// at most maxQuotedMechanismLen bytes, and "…" after them if it was cut (an
// escape sequence is never cut in two).
func quoteMechanism(name string) string {
	printable := true
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] >= 0x7f {
			printable = false
			break
		}
	}
	if printable {
		if len(name) > maxQuotedMechanismLen {
			return name[:maxQuotedMechanismLen] + "…"
		}
		return name
	}
	b := []byte{'"'}
	var piece []byte
	for i := 0; i < len(name); {
		_, w := utf8.DecodeRuneInString(name[i:])
		piece = strconv.AppendQuoteToASCII(piece[:0], name[i:i+w])
		piece = piece[1 : len(piece)-1]
		// Keep room for the closing quote.
		if len(b)+len(piece)+1 > maxQuotedMechanismLen {
			return string(b) + "…"
		}
		b = append(b, piece...)
		i += w
	}
	return string(append(b, '"'))
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
