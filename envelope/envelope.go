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
// smtplib send_message does.
package envelope

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
