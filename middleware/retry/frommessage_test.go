package retry_test

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/middleware/retry"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// The reader envelope.FromMessage returns for a message that can seek can
// be sent again: a 451 after the data is retried, and the message arrives
// once, whole, without its Bcc.
func TestRetryFromMessageBody(t *testing.T) {
	const msg = "From: a@example.org\r\nTo: b@example.org\r\nBcc: c@example.org\r\nSubject: x\r\n\r\nbody\r\n"
	const want = "From: a@example.org\r\nTo: b@example.org\r\nSubject: x\r\n\r\nbody\r\n"
	s := smtptest.NewUnstartedServer()
	var datas atomic.Int32
	s.Data = func(*smtptest.Message) error {
		if datas.Add(1) == 1 {
			return &transport.ReplyError{Code: 451, EnhancedCode: transport.EnhancedCode{4, 3, 0}, Message: "try again"}
		}
		return nil
	}
	s.Start()
	defer s.Close()
	inner := s.Transport()
	defer inner.Close()
	env, body, err := envelope.FromMessage(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	res, err := retry.New(retry.WithBackoff(noWait))(inner).Send(t.Context(), env, body)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if res.Count(transport.Accepted) != 2 || res.Rcpts[0].Attempts != 2 {
		t.Errorf("result %+v", res)
	}
	got := s.Messages()
	if len(got) != 1 || string(got[0].Data) != want {
		t.Fatalf("server stored %d messages, want one: %+v", len(got), got)
	}
}
