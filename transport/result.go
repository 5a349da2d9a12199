package transport

import (
	"strconv"
	"strings"

	"github.com/hashicorp/go-multierror"
)

// Outcome is what happened to a message for one recipient.
type Outcome uint8

// Outcomes. They are the four the RFCs allow a client to know, plus the zero
// value for a recipient that was never attempted.
const (
	// NotAttempted is the zero value: no transaction included this
	// recipient, because a middleware or the caller stopped the Send
	// before any (a rate limiter whose wait was cancelled, say). A
	// transport's own Send never returns it: an envelope refused before
	// MAIL makes every recipient PermFailed.
	NotAttempted Outcome = iota
	// Accepted means the server took responsibility for delivery to the
	// recipient (SMTP: a 2yz reply to the end of data; LMTP: a 2yz reply for
	// this recipient).
	Accepted
	// TempFailed means the message was certainly not delivered to the
	// recipient and a later attempt may succeed (a 4yz reply, or a failure
	// before the end of the data).
	TempFailed
	// PermFailed means the server refused the recipient or the message with a
	// 5yz reply, or the client refused it locally; retrying will not help.
	PermFailed
	// Unknown means the connection was lost between the final dot and its
	// reply (RFC 1047): the message may or may not have been delivered.
	Unknown
)

var outcomeNames = [...]string{"not-attempted", "accepted", "temp-failed", "perm-failed", "unknown"}

// String returns the outcome's name: "accepted", "temp-failed", "perm-failed",
// "unknown" or "not-attempted".
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Reply is one reply from the server.
type Reply struct {
	Code         int          // basic reply code, 200 to 599
	EnhancedCode EnhancedCode // RFC 3463 code; zero if the server sent none
	Text         string       // reply lines joined by "\n", codes stripped
}

// String returns the reply as "250 2.0.0 text".
func (r Reply) String() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(r.Code))
	if r.EnhancedCode != (EnhancedCode{}) {
		b.WriteByte(' ')
		b.WriteString(r.EnhancedCode.String())
	}
	if r.Text != "" {
		b.WriteByte(' ')
		b.WriteString(r.Text)
	}
	return b.String()
}

// RcptResult is the outcome of a Send for one recipient.
type RcptResult struct {
	// Addr is the recipient as given in the envelope.
	Addr string
	// Outcome says what happened.
	Outcome Outcome
	// Reply is the reply that decided the outcome: the RCPT reply for a
	// refusal, the end-of-data reply for an accepted recipient (for LMTP, this
	// recipient's own reply). It is nil when no reply decided it (a local
	// refusal, or a lost connection).
	Reply *Reply
	// Err is nil if the recipient was accepted, otherwise why not: usually a
	// *ReplyError or an *OpError.
	Err error
	// Attempts is how many Sends of the transport reached this recipient:
	// 1 without the retry middleware (an envelope refused before MAIL
	// counts as one), 0 for NotAttempted.
	Attempts int
}

// Result is the per-recipient outcome of a Send.
type Result struct {
	// Rcpts holds one entry per envelope recipient, in envelope order.
	Rcpts []RcptResult
	// Reply is the server's reply to the end of the data (it often carries
	// the queue ID); nil if the data was not accepted or, for LMTP, where
	// each recipient has its own reply.
	Reply *Reply
}

// Err returns nil if every recipient was accepted; otherwise a go-multierror
// aggregate of one *[RcptError] per recipient that was not, in envelope order.
func (r *Result) Err() error {
	if r == nil {
		return nil
	}
	var merr *multierror.Error
	for i := range r.Rcpts {
		rr := &r.Rcpts[i]
		if rr.Outcome == Accepted {
			continue
		}
		err := rr.Err
		if err == nil {
			err = errNotAttempted
		}
		merr = multierror.Append(merr, &RcptError{Rcpt: rr.Addr, Outcome: rr.Outcome, Err: err})
	}
	if merr != nil {
		merr.ErrorFormat = formatErrors
	}
	return merr.ErrorOrNil()
}

// Accepted returns the addresses of the recipients the message was accepted
// for, in envelope order.
func (r *Result) Accepted() []string {
	return r.addrs(func(o Outcome) bool { return o == Accepted })
}

// Refused returns the addresses of the recipients the message was not
// accepted for (temporarily, permanently, or unknown), in envelope order.
func (r *Result) Refused() []string {
	return r.addrs(func(o Outcome) bool { return o != Accepted })
}

func (r *Result) addrs(keep func(Outcome) bool) []string {
	if r == nil {
		return nil
	}
	var out []string
	for _, rr := range r.Rcpts {
		if keep(rr.Outcome) {
			out = append(out, rr.Addr)
		}
	}
	return out
}

// Count returns how many recipients have outcome o.
func (r *Result) Count(o Outcome) int {
	if r == nil {
		return 0
	}
	n := 0
	for _, rr := range r.Rcpts {
		if rr.Outcome == o {
			n++
		}
	}
	return n
}

// formatErrors renders an aggregate on one line, "a; b; c", instead of
// go-multierror's multi-line default.
func formatErrors(errs []error) string {
	var b strings.Builder
	for i, err := range errs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}
