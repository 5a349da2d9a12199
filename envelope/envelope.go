// Package envelope defines the SMTP envelope (RFC 5321 section 2.3.1): the
// reverse-path, the forward-paths and the ESMTP parameters that travel with a
// message but are not part of it.
//
// Extensions whose parameters an Envelope carries:
//
//   - SIZE (RFC 1870)
//   - 8BITMIME (RFC 6152) and BINARYMIME (RFC 3030) through BODY=
//   - SMTPUTF8 (RFC 6531)
//   - REQUIRETLS (RFC 8689)
//   - DSN (RFC 3461): RET, ENVID, NOTIFY and ORCPT, xtext-encoded on the wire
//
// [FromMessage] derives an envelope from a message header the way Python's
// smtplib send_message does, and returns the message with its Bcc and
// Resent-Bcc fields removed.
//
// [Envelope.Validate] is the choke point for what may reach the wire: it
// rejects control characters (CR, LF, NUL, the rest of C0, DEL, C1, U+2028 and
// U+2029) and invalid UTF-8 anywhere in an address or parameter, enforces the
// RFC 5321 address grammar (RFC 6531 for non-ASCII addresses) and the RFC 5321
// section 4.5.3.1 length limits, and checks every ESMTP parameter value. All
// checks run on the bytes that will be sent; nothing is converted first.
//
// Envelopes are plain data and safe to read from several goroutines; functions
// in this package never modify an Envelope they are given.
package envelope

import (
	"slices"
	"strings"
)

// An Envelope is the envelope of one message. The zero value has no recipients
// and is not valid. An Envelope is plain data: transports and middleware never
// modify the one they are given.
type Envelope struct {
	// From is the reverse-path. The empty string is the null reverse-path "<>",
	// used for bounces and other automatic replies.
	From string

	// To lists the forward-paths in RCPT order, each with its own parameters.
	To []Recipient

	// Size is the message size declared with SIZE= (RFC 1870); 0 means
	// undeclared. Transports check it against the server's limit before MAIL.
	Size int64

	// Body is the BODY= parameter (RFC 6152, RFC 3030); "" sends none.
	Body BodyType

	// UTF8 requests SMTPUTF8 (RFC 6531). It is also implied by any non-ASCII
	// address; see [Envelope.NeedsUTF8].
	UTF8 bool

	// RequireTLS requests REQUIRETLS (RFC 8689).
	RequireTLS bool

	// Return is the DSN RET= parameter (RFC 3461); "" sends none.
	Return DSNReturn

	// EnvID is the DSN ENVID= parameter (RFC 3461), xtext-encoded on the wire;
	// "" sends none.
	EnvID string
}

// A Recipient is one forward-path and its RCPT TO parameters.
type Recipient struct {
	// Addr is the mailbox, without angle brackets.
	Addr string

	// Notify is the DSN NOTIFY= parameter (RFC 3461); nil sends none.
	Notify []DSNNotify

	// ORcpt is the DSN ORCPT= original recipient address (RFC 3461), sent as
	// "rfc822;" plus the xtext-encoded address (or "utf-8;" for non-ASCII);
	// "" sends none.
	ORcpt string
}

// BodyType is the value of the BODY= MAIL parameter.
type BodyType string

// Body types.
const (
	Body7Bit       BodyType = "7BIT"       // RFC 6152
	Body8BitMIME   BodyType = "8BITMIME"   // RFC 6152
	BodyBinaryMIME BodyType = "BINARYMIME" // RFC 3030; needs CHUNKING
)

// DSNReturn is the value of the DSN RET= MAIL parameter.
type DSNReturn string

// DSN RET values (RFC 3461 section 4.3).
const (
	ReturnFull    DSNReturn = "FULL"
	ReturnHeaders DSNReturn = "HDRS"
)

// DSNNotify is one value of the DSN NOTIFY= RCPT parameter.
type DSNNotify string

// DSN NOTIFY values (RFC 3461 section 4.1). Never may not be combined with
// the others.
const (
	NotifyNever   DSNNotify = "NEVER"
	NotifySuccess DSNNotify = "SUCCESS"
	NotifyFailure DSNNotify = "FAILURE"
	NotifyDelay   DSNNotify = "DELAY"
)

// New returns an envelope with reverse-path from and one recipient, without
// parameters, for each address in to, in order. It does not check the
// addresses: call [Envelope.Validate] for that (transports do before sending).
func New(from string, to ...string) *Envelope {
	e := &Envelope{From: from}
	if len(to) > 0 {
		e.To = make([]Recipient, len(to))
		for i, addr := range to {
			e.To[i].Addr = addr
		}
	}
	return e
}

// Clone returns a deep copy of e: the recipients and their Notify lists are
// copied, so changing the copy never changes e. Middleware uses it to derive
// an envelope (for example one with fewer recipients) without touching the
// caller's. Clone(nil) returns nil.
func (e *Envelope) Clone() *Envelope {
	if e == nil {
		return nil
	}
	c := *e
	c.To = slices.Clone(e.To)
	for i := range c.To {
		c.To[i].Notify = slices.Clone(e.To[i].Notify)
	}
	return &c
}

// NeedsUTF8 reports whether sending e requires SMTPUTF8 (RFC 6531): UTF8 is
// set, or the reverse-path, a forward-path or an ORcpt address contains a
// byte outside US-ASCII.
func (e *Envelope) NeedsUTF8() bool {
	if e.UTF8 || !isASCII(e.From) {
		return true
	}
	for _, r := range e.To {
		if !isASCII(r.Addr) || !isASCII(r.ORcpt) {
			return true
		}
	}
	return false
}

// UnmarshalText sets b from text, ignoring case, so that configuration files
// may write "8bitmime". Empty text sets "" (no BODY= parameter). Any other
// value returns an [*Error] wrapping [ErrInvalidParam] and leaves b unchanged.
func (b *BodyType) UnmarshalText(text []byte) error {
	v, ok := canonical(string(text), Body7Bit, Body8BitMIME, BodyBinaryMIME)
	if !ok {
		return &Error{Field: "body", Err: ErrInvalidParam}
	}
	*b = v
	return nil
}

// UnmarshalText sets r from text, ignoring case. Empty text sets "" (no RET=
// parameter). Any other value returns an [*Error] wrapping [ErrInvalidParam]
// and leaves r unchanged.
func (r *DSNReturn) UnmarshalText(text []byte) error {
	v, ok := canonical(string(text), ReturnFull, ReturnHeaders)
	if !ok {
		return &Error{Field: "return", Err: ErrInvalidParam}
	}
	*r = v
	return nil
}

// UnmarshalText sets n from text, ignoring case. Any value other than the four
// NOTIFY keywords, including empty text, returns an [*Error] wrapping
// [ErrInvalidParam] and leaves n unchanged.
func (n *DSNNotify) UnmarshalText(text []byte) error {
	v, ok := canonical(string(text), NotifyNever, NotifySuccess, NotifyFailure, NotifyDelay)
	if !ok || v == "" {
		return &Error{Field: "notify", Err: ErrInvalidParam}
	}
	*n = v
	return nil
}

// canonical returns the member of values equal to s ignoring ASCII case, or
// "" for an empty s.
func canonical[T ~string](s string, values ...T) (T, bool) {
	if s == "" {
		return "", true
	}
	for _, v := range values {
		if strings.EqualFold(s, string(v)) && isASCII(s) {
			return v, true
		}
	}
	return "", false
}

// isASCII reports whether every byte of s is below 0x80.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
