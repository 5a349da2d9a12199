package smtptest

import (
	"slices"

	"github.com/mailwire/mailwire/envelope"
)

// MailOptions are the ESMTP parameters of a MAIL command, as the client sent
// them and the server decoded them.
type MailOptions struct {
	// Size is the SIZE= declaration (RFC 1870); 0 if none.
	Size int64
	// Body is the BODY= parameter (RFC 6152, RFC 3030); "" if none.
	Body envelope.BodyType
	// UTF8 reports the SMTPUTF8 parameter (RFC 6531).
	UTF8 bool
	// RequireTLS reports the REQUIRETLS parameter (RFC 8689).
	RequireTLS bool
	// Return is the DSN RET= parameter (RFC 3461); "" if none.
	Return envelope.DSNReturn
	// EnvID is the DSN ENVID= parameter, xtext-decoded; "" if none.
	EnvID string
	// Auth is the AUTH= parameter (RFC 4954 section 5), xtext-decoded: ""
	// if none, "<>" for AUTH=<>, otherwise the mailbox.
	Auth string
}

// RcptOptions are the ESMTP parameters of a RCPT command, as the client sent
// them and the server decoded them.
type RcptOptions struct {
	// Notify is the DSN NOTIFY= parameter (RFC 3461); nil if none.
	Notify []envelope.DSNNotify
	// ORcpt is the address of the DSN ORCPT= parameter, decoded; "" if
	// none.
	ORcpt string
	// ORcptType is the address type of ORCPT=, upper case as go-smtp
	// normalises it: "RFC822" or "UTF-8"; "" if none. The [Recorder] leaves
	// it empty.
	ORcptType string
}

// Message is a message a [Server] accepted, or one a [Recorder] was given.
// Messages are recorded before the server replies to the end of the data,
// so a client that has seen the reply also sees the message in
// [Server.Messages]. A Message must not be modified.
type Message struct {
	// From is the reverse-path; "" for the null reverse-path "<>".
	From string
	// To lists the recipients the server accepted at RCPT, in order,
	// duplicates included. Refused recipients are not listed.
	To []string
	// RcptOptions holds the RCPT parameters of each recipient of To, in the
	// same order.
	RcptOptions []RcptOptions
	// MailOptions holds the MAIL parameters.
	MailOptions MailOptions
	// Data is the message content as received: dot-unstuffed, with the
	// client's line endings, without the terminating "." line.
	Data []byte
	// Size is the length of the message data as received, also when the
	// server discards the data (Server.DiscardData).
	Size int64
	// Delivered lists the recipients the message was accepted for at the end
	// of the data, in RCPT order. For SMTP it equals To. For LMTP it holds
	// the recipients whose LMTPData (or Data) hook accepted the message. For a
	// Recorder, the recipients its Result accepted. Hooks see it empty.
	Delivered []string
	// Hello is the EHLO, HELO or LHLO argument of the session.
	Hello string
	// TLS reports whether the session was encrypted (implicit TLS or after
	// STARTTLS).
	TLS bool
	// AuthUser is the user the session authenticated as; "" if it did not.
	AuthUser string
	// Chunked reports that the content came with BDAT (RFC 3030) rather
	// than DATA.
	Chunked bool
}

// Envelope returns the envelope the message was sent with, as far as the
// server saw it: the reverse-path, the accepted recipients and the
// parameters.
func (m *Message) Envelope() *envelope.Envelope {
	env := &envelope.Envelope{
		From:       m.From,
		Size:       m.MailOptions.Size,
		Body:       m.MailOptions.Body,
		UTF8:       m.MailOptions.UTF8,
		RequireTLS: m.MailOptions.RequireTLS,
		Return:     m.MailOptions.Return,
		EnvID:      m.MailOptions.EnvID,
	}
	for i, to := range m.To {
		r := envelope.Recipient{Addr: to}
		if i < len(m.RcptOptions) {
			r.Notify = slices.Clone(m.RcptOptions[i].Notify)
			r.ORcpt = m.RcptOptions[i].ORcpt
		}
		env.To = append(env.To, r)
	}
	return env
}
