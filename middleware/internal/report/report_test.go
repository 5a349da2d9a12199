package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
)

type both struct{ errs []error }

func (b both) Error() string   { return "both" }
func (b both) Unwrap() []error { return b.errs }

func TestErrorType(t *testing.T) {
	netErr := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset")}
	partial := (&transport.Result{Rcpts: []transport.RcptResult{
		{Addr: "a@x", Outcome: transport.Accepted},
		{Addr: "b@x", Outcome: transport.TempFailed, Err: &transport.OpError{Op: transport.OpRcpt, Err: netErr}},
	}}).Err()
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{&transport.ReplyError{Code: 451}, "smtp.4xx"},
		{&transport.ReplyError{Code: 554}, "smtp.5xx"},
		{&transport.ReplyError{Code: 250}, "smtp.reply"},
		{&transport.OpError{Op: transport.OpEndOfData, Err: netErr}, "smtp.unknown_outcome"},
		{&transport.OpError{Op: transport.OpData, Err: netErr}, "*net.OpError"},
		{partial, "*net.OpError"},
		{fmt.Errorf("x: %w", context.Canceled), "context.Canceled"},
		{both{[]error{&envelope.Error{Field: "from", Err: envelope.ErrMalformed}, io.EOF}}, "*envelope.Error"},
		{errors.New("plain"), "_OTHER"},
	}
	for _, tt := range tests {
		if got := ErrorType(tt.err); got != tt.want {
			t.Errorf("ErrorType(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	ok := &transport.Reply{Code: 250, EnhancedCode: transport.EnhancedCode{2, 0, 0}}
	busy := &transport.ReplyError{Code: 450, EnhancedCode: transport.EnhancedCode{4, 2, 0}}
	res := &transport.Result{Reply: ok, Rcpts: []transport.RcptResult{
		{Outcome: transport.Accepted, Reply: ok, Attempts: 1},
		{Outcome: transport.TempFailed, Reply: busy.Reply(), Err: busy, Attempts: 3},
		{Outcome: transport.PermFailed, Attempts: 1},
		{Outcome: transport.Unknown, Attempts: 1},
		{Outcome: transport.NotAttempted},
	}}
	s := Summarize(res, res.Err())
	want := Summary{Total: 5, Accepted: 1, Transient: 1, Permanent: 1, Unknown: 1, NotAttempted: 1, Attempts: 3,
		Code: 450, EnhancedCode: transport.EnhancedCode{4, 2, 0}, ErrorType: "smtp.unknown_outcome"} // an Unknown outcome outranks a reply
	if s != want {
		t.Errorf("Summarize = %+v, want %+v", s, want)
	}
	if s.Refused() != 4 {
		t.Errorf("Refused = %d, want 4", s.Refused())
	}
	lmtp := &transport.Result{Rcpts: []transport.RcptResult{{Outcome: transport.Accepted, Reply: ok}}}
	if s := Summarize(lmtp, nil); s.Code != 250 {
		t.Errorf("LMTP success code = %d, want the recipient's 250", s.Code)
	}
}

func TestNotAttempted(t *testing.T) {
	if NotAttempted(nil, io.EOF) != nil {
		t.Error("NotAttempted(nil) != nil")
	}
	e := &envelope.Envelope{To: []envelope.Recipient{{Addr: "a@x"}, {Addr: "b@x"}}}
	res := NotAttempted(e, io.EOF)
	if len(res.Rcpts) != 2 || res.Rcpts[1].Addr != "b@x" || res.Rcpts[1].Outcome != transport.NotAttempted || res.Rcpts[1].Err != io.EOF {
		t.Errorf("NotAttempted = %+v", res)
	}
}
