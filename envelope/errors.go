package envelope

import "errors"

// Error reports an envelope, or a message header, that cannot be used. Err
// is one of the sentinel errors of this package, so callers test the kind
// with errors.Is.
type Error struct {
	// Field names what is wrong: "from", "to[2]", "to[2].orcpt", "envid",
	// "size", "header", or a header field name such as "Resent-To".
	Field string
	// Err is the kind of problem: one of the Err* sentinels of this
	// package, or a sentinel of the package that refused the envelope.
	Err error
}

// Error returns "envelope: to[2]: address contains a control character".
func (e *Error) Error() string { return "envelope: " + e.Field + ": " + e.Err.Error() }

// Unwrap returns e.Err.
func (e *Error) Unwrap() error { return e.Err }

// Kinds of envelope error, matched with errors.Is.
var (
	ErrControlChar    = errors.New("contains CR, LF, NUL or another control character")
	ErrTooLong        = errors.New("exceeds an RFC 5321 length limit")
	ErrMalformed      = errors.New("malformed address")
	ErrNoRecipients   = errors.New("no recipients")
	ErrInvalidParam   = errors.New("invalid ESMTP parameter")
	ErrMultipleResent = errors.New("more than one Resent- block")
	ErrHeaderTooLarge = errors.New("header exceeds the size limit")
	ErrNoSender       = errors.New("no sender address in the header")
)
