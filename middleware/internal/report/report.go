// Package report derives what the middleware may safely record about a Send:
// counts, reply codes and an error type, never addresses, reply texts or
// message content.
package report

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/go-multierror"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
)

// Summary is the address-free digest of one Send.
type Summary struct {
	Total        int // recipients in the Result
	Accepted     int
	Transient    int // TempFailed
	Permanent    int // PermFailed
	Unknown      int
	NotAttempted int

	// Attempts is the largest RcptResult.Attempts; 0 if there is no Result.
	Attempts int

	// Code and EnhancedCode are the final reply on success (the end-of-data
	// reply) or the failing reply on failure; Code is 0 if there was none.
	Code         int
	EnhancedCode transport.EnhancedCode

	// ErrorType is a low-cardinality name for err; "" if err is nil.
	ErrorType string
}

// Refused returns the number of recipients that were not accepted.
func (s Summary) Refused() int { return s.Total - s.Accepted }

// Summarize digests the outcome of a Send.
func Summarize(res *transport.Result, err error) Summary {
	var s Summary
	if res != nil {
		s.Total = len(res.Rcpts)
		for i := range res.Rcpts {
			rr := &res.Rcpts[i]
			switch rr.Outcome {
			case transport.Accepted:
				s.Accepted++
			case transport.TempFailed:
				s.Transient++
			case transport.PermFailed:
				s.Permanent++
			case transport.Unknown:
				s.Unknown++
			default:
				s.NotAttempted++
			}
			s.Attempts = max(s.Attempts, rr.Attempts)
		}
	}
	if r := finalReply(res, err); r != nil {
		s.Code, s.EnhancedCode = r.Code, r.EnhancedCode
	}
	s.ErrorType = ErrorType(err)
	return s
}

// finalReply returns the end-of-data reply on success, the failing reply on
// failure, or nil.
func finalReply(res *transport.Result, err error) *transport.Reply {
	if err != nil {
		var re *transport.ReplyError
		if errors.As(err, &re) {
			return re.Reply()
		}
		if res != nil {
			for i := range res.Rcpts {
				if rr := &res.Rcpts[i]; rr.Outcome != transport.Accepted && rr.Reply != nil {
					return rr.Reply
				}
			}
		}
		return nil
	}
	if res == nil {
		return nil
	}
	if res.Reply != nil {
		return res.Reply
	}
	for i := range res.Rcpts {
		if rr := &res.Rcpts[i]; rr.Reply != nil {
			return rr.Reply // LMTP: each recipient has its own reply
		}
	}
	return nil
}

// ErrorType names err for the error.type attribute and the error_type log
// field, without its text (which may quote addresses):
//
//   - "smtp.unknown_outcome" if err matches transport.ErrUnknownOutcome;
//   - "context.DeadlineExceeded" or "context.Canceled" for context errors;
//   - "smtp.4xx" or "smtp.5xx" if err holds a *transport.ReplyError;
//   - otherwise the Go type of the innermost error that is not a plain
//     errors.New or fmt.Errorf value, such as "*net.OpError";
//   - "_OTHER" if there is no better name.
func ErrorType(err error) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, transport.ErrUnknownOutcome) {
		return "smtp.unknown_outcome"
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "context.DeadlineExceeded"
	case errors.Is(err, context.Canceled):
		return "context.Canceled"
	}
	var re *transport.ReplyError
	if errors.As(err, &re) {
		switch re.Code / 100 {
		case 4:
			return "smtp.4xx"
		case 5:
			return "smtp.5xx"
		}
		return "smtp.reply"
	}
	return typeName(err)
}

// typeName follows err's chain (the first branch where it forks) and returns
// the type of the innermost error that says more than its text.
func typeName(err error) string {
	name := "_OTHER"
	for e := err; e != nil; {
		if m, ok := e.(*multierror.Error); ok {
			if len(m.Errors) == 0 {
				break
			}
			e = m.Errors[0]
			continue
		}
		switch t := fmt.Sprintf("%T", e); t {
		case "*errors.errorString", "*fmt.wrapError", "*fmt.wrapErrors", "*errors.joinError":
		default:
			name = t
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			errs := u.Unwrap()
			if len(errs) == 0 {
				return name
			}
			e = errs[0]
		case interface{ Unwrap() error }:
			e = u.Unwrap()
		default:
			return name
		}
	}
	return name
}

// NotAttempted returns the Result of a Send that a middleware stopped before
// it reached the transport: every recipient NotAttempted, with err as its
// error. It returns nil if env is nil.
func NotAttempted(env *envelope.Envelope, err error) *transport.Result {
	if env == nil {
		return nil
	}
	res := &transport.Result{Rcpts: make([]transport.RcptResult, len(env.To))}
	for i, r := range env.To {
		res.Rcpts[i] = transport.RcptResult{Addr: r.Addr, Outcome: transport.NotAttempted, Err: err}
	}
	return res
}
