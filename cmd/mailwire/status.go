package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"regexp"
	"strings"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
)

// exitCode returns the sysexits.h status for the outcome of one send.
func exitCode(res *transport.Result, err error) int {
	if err == nil {
		return exitOK
	}
	var xe *exitError
	if errors.As(err, &xe) {
		return xe.code
	}
	// Per-recipient refusals: Send returned Result.Err, an aggregate (some
	// recipients accepted, or LMTP), or an *OpError at RCPT wrapping it
	// (every recipient refused). Either way the recipients decide, so that
	// the status does not depend on whether one of them was accepted: a
	// permanent refusal wins over a temporary one.
	if oe, isOp := err.(*transport.OpError); (!isOp || oe.Op == transport.OpRcpt) && res != nil && len(res.Refused()) > 0 {
		if rcptAuthRequired(res) {
			return exitNoPerm
		}
		if st := rcptStatus(res); st != exitOK {
			return st
		}
	}
	var (
		oe   *transport.OpError
		ne   *transport.NotSupportedError
		envE *envelope.Error
		me   *transport.MessageError
		dnsE *net.DNSError
		pe   *transport.ProtocolError
		re   *transport.ReplyError
	)
	hasOp := errors.As(err, &oe)
	switch {
	case errors.As(err, &me):
		return exitIOErr
	case errors.As(err, &ne):
		return exitUnavailable
	case errors.As(err, &envE):
		return exitDataErr
	case errors.As(err, &dnsE) && dnsE.IsNotFound:
		return exitNoHost
	case hasOp && oe.Op == transport.OpAuth:
		if errors.Is(err, transport.ErrTransient) {
			return exitTempFail
		}
		return exitNoPerm
	case errors.Is(err, auth.ErrInsecure), errors.Is(err, auth.ErrHostMismatch), errors.Is(err, auth.ErrMalformedCredentials):
		return exitNoPerm
	case errors.As(err, &re) && re.Code == 530:
		// 530 5.7.0 Authentication required (RFC 4954), at MAIL.
		return exitNoPerm
	case isTLSError(err):
		return exitProtocol
	case errors.As(err, &pe):
		return exitProtocol
	case errors.Is(err, transport.ErrUnknownOutcome):
		return exitTempFail
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return exitTempFail
	case errors.Is(err, transport.ErrTransient):
		return exitTempFail
	case errors.Is(err, transport.ErrPermanent):
		// The recipients carry the refusal of the data; a refused sender
		// (MAIL) is no unknown recipient, whatever its enhanced code.
		if res != nil && res.Count(transport.PermFailed) > 0 && !(hasOp && oe.Op == transport.OpMail) {
			return rcptStatus(res)
		}
		return exitUnavailable
	}
	return exitUnavailable
}

// rcptStatus returns the status for a result with refused recipients: a
// permanent refusal wins; EX_NOUSER when every permanent refusal says the
// mailbox does not exist (enhanced status 5.1.x); EX_TEMPFAIL when only
// temporary or unknown outcomes remain.
//
// Recipients that --require-all abandoned because another was refused
// (transport.ErrNotAllAccepted) follow from that refusal and do not count.
func rcptStatus(res *transport.Result) int {
	perm, nouser, other := 0, 0, 0
	for _, rr := range res.Rcpts {
		switch {
		case rr.Outcome == transport.Accepted:
		case errors.Is(rr.Err, transport.ErrNotAllAccepted):
		case rr.Outcome == transport.PermFailed:
			perm++
			var re *transport.ReplyError
			if errors.As(rr.Err, &re) && re.EnhancedCode[0] == 5 && re.EnhancedCode[1] == 1 {
				nouser++
			}
		default:
			other++
		}
	}
	switch {
	case perm > 0 && nouser == perm:
		return exitNoUser
	case perm > 0:
		return exitUnavailable
	case other > 0:
		return exitTempFail
	}
	return exitOK
}

// rcptAuthRequired reports whether a recipient was refused with 530
// (authentication required, RFC 4954), which is a matter of credentials.
func rcptAuthRequired(res *transport.Result) bool {
	for _, rr := range res.Rcpts {
		var re *transport.ReplyError
		if rr.Outcome != transport.Accepted && errors.As(rr.Err, &re) && re.Code == 530 {
			return true
		}
	}
	return false
}

// isTLSError reports whether err comes from the TLS layer: a handshake
// failure or a certificate the client could not verify.
func isTLSError(err error) bool {
	var (
		cv *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		hn x509.HostnameError
		ci x509.CertificateInvalidError
		rh tls.RecordHeaderError
		ae tls.AlertError
	)
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) ||
		errors.As(err, &ci) || errors.As(err, &rh) || errors.As(err, &ae) ||
		errors.Is(err, transport.ErrTLS)
}

// severity orders exit statuses from best to worst, for the status of a
// batch: the worst message decides it.
func severity(code int) int {
	switch code {
	case exitOK:
		return 0
	case exitTempFail:
		return 1
	case exitNoUser, exitUnavailable, exitDataErr, exitNoInput, exitIOErr:
		return 2
	case exitProtocol, exitNoHost:
		return 3
	case exitNoPerm:
		return 4
	case exitConfig, exitUsage:
		return 5
	}
	return 6
}

// worse returns whichever of a and b is the worse status.
func worse(a, b int) int {
	if severity(b) > severity(a) {
		return b
	}
	return a
}

// oneLine flattens a multi-line server reply or error for a one-line report.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r", "")
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", " / ")
}

// queueIDPatterns find the queue ID in the reply to the end of the data of
// common servers.
var queueIDPatterns = []*regexp.Regexp{
	regexp.MustCompile(`(?i)\bqueued as ([A-Za-z0-9._-]+)`),                      // Postfix
	regexp.MustCompile(`(?i)\bid=([A-Za-z0-9._-]+)`),                             // Exim
	regexp.MustCompile(`^([A-Za-z0-9]+) Message accepted for delivery`),          // Sendmail
	regexp.MustCompile(`(?i)InternalId=([0-9]+)`),                                // Exchange
	regexp.MustCompile(`(?i)^ok:? ([0-9a-f][0-9a-f-]{19,}[0-9a-f])\s*$`),         // Amazon SES
	regexp.MustCompile(`(?i)\b(?:queued|accepted|saved)\b.*?\b([A-F0-9]{8,})\b`), // other hex queue IDs
}

// queueID returns the queue ID in a reply text, or "".
func queueID(text string) string {
	text = strings.TrimSpace(strings.Split(text, "\n")[0])
	for _, re := range queueIDPatterns {
		if m := re.FindStringSubmatch(text); m != nil {
			return m[1]
		}
	}
	return ""
}

// describeRcpt is one refused recipient as "<addr> (perm-failed): 550 ...".
func describeRcpt(rr transport.RcptResult) string {
	var why string
	switch {
	case rr.Err != nil:
		why = rr.Err.Error()
	case rr.Reply != nil:
		why = rr.Reply.String()
	default:
		why = rr.Outcome.String()
	}
	return "<" + rr.Addr + "> (" + rr.Outcome.String() + "): " + oneLine(why)
}
