package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/envelope"
)

// Classification targets for errors.Is. A single failure matches at most
// one of them; an aggregate of several recipients' failures (the
// multierror of a partial success, or of every recipient refused) matches
// each class one of its failures matches, so that a message some of whose
// recipients may already have it matches ErrUnknownOutcome whatever else
// it matches: test ErrUnknownOutcome before ErrTransient, or decide per
// recipient from the Result. An error that matches none (the caller's own
// context error, a TLS verification failure, a local policy refusal) must
// not be retried automatically.
var (
	// ErrTransient matches failures after which the message was certainly not
	// delivered and a later attempt may succeed: a 4yz reply, or a connection
	// lost or timed out by the server before the end of the data.
	ErrTransient = errors.New("transport: transient failure")

	// ErrPermanent matches failures that retrying will not fix: a 5yz reply,
	// an envelope or message refused locally, a missing server extension.
	ErrPermanent = errors.New("transport: permanent failure")

	// ErrUnknownOutcome matches a connection lost, or a reply not received,
	// after the final dot of the data (RFC 1047): the server may have
	// delivered the message. Retrying risks a duplicate.
	ErrUnknownOutcome = errors.New("transport: outcome unknown")
)

// ErrInsecureAuth is returned (inside an *OpError with Op OpAuth) when
// authentication would send a credential over a connection that is neither
// encrypted nor a Unix socket, and the caller did not allow it.
var ErrInsecureAuth = auth.ErrInsecure

// errNotAttempted is the Err of a recipient the transport never reached.
var errNotAttempted = errors.New("transport: recipient not attempted")

// EnhancedCode is an RFC 3463 enhanced status code such as 5.1.1. The zero
// value means the server sent none.
type EnhancedCode [3]int

// String returns the code as "5.1.1", or "" for the zero value.
func (c EnhancedCode) String() string {
	if c == (EnhancedCode{}) {
		return ""
	}
	return strconv.Itoa(c[0]) + "." + strconv.Itoa(c[1]) + "." + strconv.Itoa(c[2])
}

// ReplyError is a negative (4yz or 5yz) or unexpected reply from the server.
// It is plain data, so tests and smtptest hooks can construct one to send
// exactly that reply.
type ReplyError struct {
	Code         int          // basic reply code
	EnhancedCode EnhancedCode // zero if none was sent
	Message      string       // reply lines joined by "\n", codes stripped
}

// Error returns the reply as "550 5.1.1 no such user".
func (e *ReplyError) Error() string {
	return Reply{Code: e.Code, EnhancedCode: e.EnhancedCode, Text: e.Message}.String()
}

// Is makes errors.Is(err, ErrTransient) true for a 4yz reply and
// errors.Is(err, ErrPermanent) true for a 5yz reply.
func (e *ReplyError) Is(target error) bool {
	switch target {
	case ErrTransient:
		return e.Code >= 400 && e.Code < 500
	case ErrPermanent:
		return e.Code >= 500 && e.Code < 600
	}
	return false
}

// Reply returns the error's reply.
func (e *ReplyError) Reply() *Reply {
	return &Reply{Code: e.Code, EnhancedCode: e.EnhancedCode, Text: e.Message}
}

// RcptError reports that the message was not accepted for one recipient.
type RcptError struct {
	Rcpt    string  // the recipient's address
	Outcome Outcome // TempFailed, PermFailed or Unknown
	Err     error   // usually a *ReplyError or an *OpError
}

// Error returns "<bob@example.org>: 550 5.1.1 no such user".
func (e *RcptError) Error() string {
	return "<" + e.Rcpt + ">: " + e.Err.Error()
}

// Unwrap returns e.Err.
func (e *RcptError) Unwrap() error { return e.Err }

// Is classifies the error by its outcome.
func (e *RcptError) Is(target error) bool {
	switch target {
	case ErrTransient:
		return e.Outcome == TempFailed && !isContextErr(e.Err)
	case ErrPermanent:
		return e.Outcome == PermFailed
	case ErrUnknownOutcome:
		return e.Outcome == Unknown
	}
	return false
}

// Op names the step of a session that failed.
type Op string

// Steps of a session, in order.
const (
	OpEnvelope  Op = "envelope"    // envelope or message refused locally; nothing sent
	OpDial      Op = "dial"        // connecting
	OpGreeting  Op = "greeting"    // the server's first reply
	OpHello     Op = "hello"       // EHLO, HELO or LHLO
	OpStartTLS  Op = "starttls"    // STARTTLS and the TLS handshake (implicit TLS too)
	OpAuth      Op = "auth"        // SASL authentication
	OpMail      Op = "mail"        // MAIL FROM: the sender was refused
	OpRcpt      Op = "rcpt"        // RCPT TO: every recipient refused (wraps the *RcptError aggregate), or the connection failed
	OpData      Op = "data"        // DATA or BDAT refused, or the body transfer failed
	OpEndOfData Op = "end-of-data" // the reply to the final dot (or BDAT LAST)
	OpCommand   Op = "command"     // a session command: RSET, NOOP, VRFY, EXPN, HELP, raw
	OpQuit      Op = "quit"        // QUIT
)

// OpError reports that a session failed at step Op, like net.OpError.
type OpError struct {
	Op   Op     // the step that failed
	Addr string // the server as dialed; never holds credentials
	Err  error  // *ReplyError, *NotSupportedError, *ProtocolError, a network, TLS, envelope or context error
}

// Error returns "transport: mail smtp.example.com:587: 550 5.7.1 refused".
func (e *OpError) Error() string {
	var b strings.Builder
	b.WriteString("transport: ")
	b.WriteString(string(e.Op))
	if e.Addr != "" {
		b.WriteByte(' ')
		b.WriteString(e.Addr)
	}
	b.WriteString(": ")
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("<nil>")
	}
	return b.String()
}

// Unwrap returns e.Err.
func (e *OpError) Unwrap() error { return e.Err }

// Is classifies the failure:
//
//   - a context error (the caller's cancellation or deadline) matches nothing;
//   - a reply error keeps its class (4yz transient, 5yz permanent), except
//     that a missing reply to the end of data is unknown;
//   - a lost connection, a server timeout or a malformed reply at step
//     OpEndOfData matches ErrUnknownOutcome, and before it ErrTransient;
//   - TLS certificate and handshake failures match nothing: they are
//     configuration or security problems, never retried blindly;
//   - envelope errors and missing extensions match ErrPermanent.
func (e *OpError) Is(target error) bool {
	switch target {
	case ErrTransient, ErrPermanent, ErrUnknownOutcome:
	default:
		return false
	}
	return classify(e.Op, e.Err) == target
}

// classify returns the class sentinel of err at step op, or nil.
func classify(op Op, err error) error {
	if err == nil {
		return nil
	}
	var me *MessageError
	if errors.As(err, &me) {
		return nil
	}
	if isContextErr(err) {
		if op == OpEndOfData {
			return ErrUnknownOutcome
		}
		return nil
	}
	var rl *RcptLimitError
	if errors.As(err, &rl) {
		return ErrTransient
	}
	var re *ReplyError
	if errors.As(err, &re) {
		switch {
		case re.Code >= 400 && re.Code < 500:
			return ErrTransient
		case re.Code >= 500:
			return ErrPermanent
		}
		// An unexpected positive reply (2yz where 3yz was due): protocol error.
	}
	var ne *NotSupportedError
	if errors.As(err, &ne) {
		return ErrPermanent
	}
	var ee *envelope.Error
	if errors.As(err, &ee) {
		return ErrPermanent
	}
	var se *SizeError
	if errors.As(err, &se) {
		return ErrPermanent
	}
	if isTLSErr(err) || isTLSAlert(err) || errors.Is(err, ErrInsecureAuth) {
		return nil
	}
	if re != nil || isNetErr(err) || isProtocolErr(err) {
		if op == OpEndOfData {
			return ErrUnknownOutcome
		}
		return ErrTransient
	}
	return nil
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func isProtocolErr(err error) bool {
	var pe *ProtocolError
	return errors.As(err, &pe)
}

// isNetErr reports whether err is a network failure: a lost or refused
// connection, or a timeout. A bare errno counts only when it is one of the
// connection errnos (every syscall.Errno implements net.Error, but ENOENT
// from a missing program is not a network failure).
func isNetErr(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ECONNRESET, syscall.ECONNREFUSED, syscall.ECONNABORTED, syscall.EPIPE,
			syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ENETDOWN,
			syscall.EHOSTDOWN, syscall.ENETRESET, syscall.EADDRNOTAVAIL:
			return true
		}
		var oe *net.OpError
		return errors.As(err, &oe) && oe.Op == "dial" && errno != syscall.ENOENT && errno != syscall.EACCES
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

func isTLSErr(err error) bool {
	var (
		cv  *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		ci  x509.CertificateInvalidError
		rec tls.RecordHeaderError
		ae  tls.AlertError
	)
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) ||
		errors.As(err, &ci) || errors.As(err, &rec) || errors.As(err, &ae) || errors.Is(err, ErrTLS)
}

// isTLSAlert reports whether err is a TLS alert, which crypto/tls reports
// as a *net.OpError with Op "remote error" or "local error".
func isTLSAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && (oe.Op == "remote error" || oe.Op == "local error")
}

// ErrTLS is wrapped by errors from the TLS layer that the crypto/tls package
// does not type, such as a handshake the server broke off.
var ErrTLS = errors.New("transport: TLS failure")

// NotSupportedError reports that the server lacks an extension the send
// requires (STARTTLS, SMTPUTF8, 8BITMIME, REQUIRETLS, DSN, CHUNKING, AUTH or a
// mechanism), or that the server is not the kind of server expected (an LMTP
// transport talking to SMTP). It matches errors.ErrUnsupported and
// ErrPermanent.
type NotSupportedError struct {
	Extension string // the extension's EHLO keyword, such as "STARTTLS"
	Detail    string // optional explanation
}

// Error returns "transport: server does not support STARTTLS".
func (e *NotSupportedError) Error() string {
	s := "transport: server does not support " + e.Extension
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

// Is matches errors.ErrUnsupported.
func (e *NotSupportedError) Is(target error) bool {
	return target == errors.ErrUnsupported
}

// SizeError reports a message larger than the server's SIZE limit
// (RFC 1870), detected before MAIL.
type SizeError struct {
	Size  int64 // declared message size
	Limit int64 // the server's limit
}

// Error returns "transport: message size 2048 exceeds the server's limit 1024".
func (e *SizeError) Error() string {
	return "transport: message size " + strconv.FormatInt(e.Size, 10) + " exceeds the server's limit " + strconv.FormatInt(e.Limit, 10)
}

// ProtocolError reports a reply the client could not accept: malformed,
// oversized, or out of sequence.
type ProtocolError struct {
	// Reason says what was wrong, without quoting the reply.
	Reason string
}

// Error returns "transport: protocol error: " and the reason.
func (e *ProtocolError) Error() string { return "transport: protocol error: " + e.Reason }

// RcptLimitError is a 552 reply to RCPT. RFC 5321 section 4.5.3.1.10 says
// a client must take it as "too many recipients" and a temporary failure,
// although 5yz codes are otherwise permanent; it therefore matches
// ErrTransient and not ErrPermanent. errors.As still finds the
// *ReplyError.
type RcptLimitError struct {
	// Reply is the server's 552 reply to RCPT.
	Reply *ReplyError
}

// Error returns the reply as "552 5.5.3 too many recipients".
func (e *RcptLimitError) Error() string { return e.Reply.Error() }

// Is matches ErrTransient.
func (e *RcptLimitError) Is(target error) bool { return target == ErrTransient }

// As sets a **ReplyError target to the reply.
func (e *RcptLimitError) As(target any) bool {
	if p, ok := target.(**ReplyError); ok {
		*p = e.Reply
		return true
	}
	return false
}
