package transport_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
)

func TestClassification(t *testing.T) {
	re := func(code int) error { return &transport.ReplyError{Code: code, Message: "x"} }
	op := func(o transport.Op, err error) error { return &transport.OpError{Op: o, Addr: "mx:25", Err: err} }
	tests := []struct {
		name                        string
		err                         error
		transient, permanent, unkwn bool
	}{
		{"4yz reply", re(451), true, false, false},
		{"421 reply", re(421), true, false, false},
		{"5yz reply", re(550), false, true, false},
		{"mail 4yz", op(transport.OpMail, re(451)), true, false, false},
		{"mail 5yz", op(transport.OpMail, re(553)), false, true, false},
		{"end-of-data 4yz", op(transport.OpEndOfData, re(452)), true, false, false},
		{"end-of-data 5yz", op(transport.OpEndOfData, re(554)), false, true, false},
		{"eof before data", op(transport.OpRcpt, io.ErrUnexpectedEOF), true, false, false},
		{"net error during data", op(transport.OpData, &net.OpError{Op: "write", Err: os.ErrDeadlineExceeded}), true, false, false},
		{"eof after final dot", op(transport.OpEndOfData, io.EOF), false, false, true},
		{"server timeout after final dot", op(transport.OpEndOfData, os.ErrDeadlineExceeded), false, false, true},
		{"protocol error before data", op(transport.OpMail, &transport.ProtocolError{Reason: "x"}), true, false, false},
		{"protocol error after dot", op(transport.OpEndOfData, &transport.ProtocolError{Reason: "x"}), false, false, true},
		{"caller deadline", op(transport.OpMail, context.DeadlineExceeded), false, false, false},
		{"caller cancel", op(transport.OpData, context.Canceled), false, false, false},
		{"caller cancel after dot", op(transport.OpEndOfData, context.Canceled), false, false, true},
		{"wrapped caller deadline", op(transport.OpDial, fmt.Errorf("dial: %w", context.DeadlineExceeded)), false, false, false},
		{"certificate", op(transport.OpStartTLS, &tlsVerifyErr), false, false, false},
		{"unknown authority", op(transport.OpStartTLS, x509.UnknownAuthorityError{}), false, false, false},
		{"insecure auth", op(transport.OpAuth, transport.ErrInsecureAuth), false, false, false},
		{"not supported", op(transport.OpStartTLS, &transport.NotSupportedError{Extension: "STARTTLS"}), false, true, false},
		{"size", op(transport.OpEnvelope, &transport.SizeError{Size: 2, Limit: 1}), false, true, false},
		{"envelope", op(transport.OpEnvelope, &envelope.Error{Field: "from", Err: envelope.ErrControlChar}), false, true, false},
		{"message read error", op(transport.OpData, &transport.MessageError{Err: io.ErrUnexpectedEOF}), false, false, false},
		{"dial refused", op(transport.OpDial, &net.OpError{Op: "dial", Err: errors.New("connection refused")}), true, false, false},
		{"552 to RCPT (too many recipients)", &transport.RcptLimitError{Reply: &transport.ReplyError{Code: 552, Message: "too many"}}, true, false, false},
		{"rcpt temp", &transport.RcptError{Rcpt: "a@b", Outcome: transport.TempFailed, Err: re(450)}, true, false, false},
		{"rcpt perm", &transport.RcptError{Rcpt: "a@b", Outcome: transport.PermFailed, Err: re(550)}, false, true, false},
		{"rcpt unknown", &transport.RcptError{Rcpt: "a@b", Outcome: transport.Unknown, Err: io.EOF}, false, false, true},
		{"rcpt temp by caller deadline", &transport.RcptError{Rcpt: "a@b", Outcome: transport.TempFailed, Err: context.DeadlineExceeded}, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(tt.err, transport.ErrTransient); got != tt.transient {
				t.Errorf("Is(%v, ErrTransient) = %v, want %v", tt.err, got, tt.transient)
			}
			if got := errors.Is(tt.err, transport.ErrPermanent); got != tt.permanent {
				t.Errorf("Is(%v, ErrPermanent) = %v, want %v", tt.err, got, tt.permanent)
			}
			if got := errors.Is(tt.err, transport.ErrUnknownOutcome); got != tt.unkwn {
				t.Errorf("Is(%v, ErrUnknownOutcome) = %v, want %v", tt.err, got, tt.unkwn)
			}
		})
	}
}

var tlsVerifyErr = x509.CertificateInvalidError{Reason: x509.Expired}

func TestResultErrAggregates(t *testing.T) {
	res := &transport.Result{Rcpts: []transport.RcptResult{
		{Addr: "a@x", Outcome: transport.Accepted},
		{Addr: "b@x", Outcome: transport.PermFailed, Err: &transport.ReplyError{Code: 550, EnhancedCode: transport.EnhancedCode{5, 1, 1}, Message: "no such user"}},
		{Addr: "c@x", Outcome: transport.TempFailed, Err: &transport.ReplyError{Code: 450, Message: "later"}},
	}}
	err := res.Err()
	if err == nil {
		t.Fatal("Err() = nil")
	}
	if got, want := err.Error(), "<b@x>: 550 5.1.1 no such user; <c@x>: 450 later"; got != want {
		t.Errorf("Err() = %q, want %q", got, want)
	}
	var rerr *transport.RcptError
	if !errors.As(err, &rerr) || rerr.Rcpt != "b@x" {
		t.Errorf("As(*RcptError) = %v", rerr)
	}
	if !errors.Is(err, transport.ErrPermanent) || !errors.Is(err, transport.ErrTransient) {
		t.Error("aggregate should match both classes of its elements")
	}
	ok := &transport.Result{Rcpts: []transport.RcptResult{{Addr: "a@x", Outcome: transport.Accepted}}}
	if err := ok.Err(); err != nil {
		t.Errorf("all accepted: Err() = %#v, want untyped nil", err)
	}
	if got := res.Accepted(); len(got) != 1 || got[0] != "a@x" {
		t.Errorf("Accepted() = %v", got)
	}
	if got := res.Refused(); len(got) != 2 {
		t.Errorf("Refused() = %v", got)
	}
}

func TestSecurityText(t *testing.T) {
	for _, s := range []transport.Security{transport.StartTLS, transport.StartTLSOpportunistic, transport.ImplicitTLS, transport.Plaintext} {
		b, err := s.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back transport.Security
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Errorf("round trip %v: %v, %v", s, back, err)
		}
	}
	var s transport.Security
	if err := s.UnmarshalText([]byte("bogus")); err == nil {
		t.Error("UnmarshalText(bogus) = nil")
	}
}
