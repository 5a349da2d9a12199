package smtptest_test

import (
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

type lmtpReply struct {
	code int
	msg  string
}

// lmtpSend runs one LMTP transaction on a new connection: it refuses
// nothing itself and returns the RCPT replies and the per-recipient replies
// after the data (sent with BDAT in chunks of chunk bytes, if chunk > 0).
func lmtpSend(t *testing.T, s *smtptest.Server, rcpts []string, chunk int) (rcptReplies, dataReplies []lmtpReply) {
	t.Helper()
	r := newRaw(t, s)
	r.must(250, "LHLO client.example")
	r.must(250, "MAIL FROM:<sender@example.org>")
	accepted := 0
	for _, rc := range rcpts {
		code, msg := r.cmd("RCPT TO:<%s>", rc)
		rcptReplies = append(rcptReplies, lmtpReply{code, msg})
		if code == 250 {
			accepted++
		}
	}
	if accepted == 0 {
		return rcptReplies, nil
	}
	if chunk > 0 {
		r.bdat(body, chunk)
	} else {
		r.data(body)
	}
	for range accepted {
		code, msg := r.reply()
		dataReplies = append(dataReplies, lmtpReply{code, msg})
	}
	r.must(221, "QUIT")
	return rcptReplies, dataReplies
}

func TestLMTP(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		for _, chunk := range []int{0, 16} {
			name := network + "/data"
			if chunk > 0 {
				name = network + "/bdat"
			}
			t.Run(name, func(t *testing.T) { testLMTP(t, network, chunk) })
		}
	}
}

func testLMTP(t *testing.T, network string, chunk int) {
	var mu sync.Mutex
	var calls []string
	s := smtptest.NewUnstartedServer()
	s.LMTP = true
	s.Network = network
	s.Rcpt = func(to string, _ smtptest.RcptOptions) error {
		if to == "unknown@example.org" {
			return &transport.ReplyError{Code: 550, EnhancedCode: transport.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	}
	s.LMTPData = func(m *smtptest.Message, rcpt string) error {
		mu.Lock()
		calls = append(calls, rcpt)
		mu.Unlock()
		if string(m.Data) != body {
			return errors.New("data mismatch")
		}
		switch rcpt {
		case "full@example.org":
			return &transport.ReplyError{Code: 552, EnhancedCode: transport.EnhancedCode{5, 2, 2}, Message: "over quota"}
		case "later@example.org":
			return &transport.ReplyError{Code: 451, EnhancedCode: transport.EnhancedCode{4, 3, 0}, Message: "try later"}
		case "custom@example.org":
			return &transport.ReplyError{Code: 250, EnhancedCode: transport.EnhancedCode{2, 1, 5}, Message: "delivered to INBOX"}
		}
		return nil
	}
	start(t, s)
	if network == "unix" && !strings.HasPrefix(s.URL(), "lmtp:///") {
		t.Errorf("URL() = %q, want lmtp:///path", s.URL())
	}

	rcpts := []string{"a@example.org", "full@example.org", "unknown@example.org", "a@example.org", "later@example.org", "custom@example.org"}
	rcptReplies, dataReplies := lmtpSend(t, s, rcpts, chunk)
	if got := rcptReplies[2]; got.code != 550 || got.msg != "5.1.1 no such user" {
		t.Errorf("RCPT unknown = %+v, want 550 5.1.1 no such user", got)
	}
	want := []lmtpReply{
		{250, "2.0.0 <a@example.org> OK: queued"},
		{552, "5.2.2 <full@example.org> over quota"},
		{250, "2.0.0 <a@example.org> OK: queued"},
		{451, "4.3.0 <later@example.org> try later"},
		{250, "2.1.5 <custom@example.org> delivered to INBOX"},
	}
	if !reflect.DeepEqual(dataReplies, want) {
		t.Errorf("replies after data =\n%v\nwant\n%v", dataReplies, want)
	}
	wantCalls := []string{"a@example.org", "full@example.org", "a@example.org", "later@example.org", "custom@example.org"}
	if !slices.Equal(calls, wantCalls) {
		t.Errorf("LMTPData called for %q, want %q", calls, wantCalls)
	}
	msgs := s.Messages()
	if len(msgs) != 1 {
		t.Fatalf("recorded %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if !slices.Equal(m.To, wantCalls) {
		t.Errorf("To = %q, want %q", m.To, wantCalls)
	}
	if want := []string{"a@example.org", "a@example.org", "custom@example.org"}; !slices.Equal(m.Delivered, want) {
		t.Errorf("Delivered = %q, want %q", m.Delivered, want)
	}
	if m.Chunked != (chunk > 0) || string(m.Data) != body {
		t.Errorf("Chunked = %v, Data = %q", m.Chunked, m.Data)
	}
}

func TestLMTPDataFallbackAndNothingDelivered(t *testing.T) {
	s := smtptest.NewUnstartedServer()
	s.LMTP = true
	s.Network = "unix"
	s.Data = func(m *smtptest.Message) error {
		return &transport.ReplyError{Code: 452, EnhancedCode: transport.EnhancedCode{4, 3, 1}, Message: "disk full"}
	}
	start(t, s)
	_, replies := lmtpSend(t, s, []string{"a@example.org", "b@example.org"}, 0)
	want := []lmtpReply{{452, "4.3.1 <a@example.org> disk full"}, {452, "4.3.1 <b@example.org> disk full"}}
	if !reflect.DeepEqual(replies, want) {
		t.Errorf("replies = %v, want %v", replies, want)
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("recorded %d messages, want 0 when no recipient was delivered", n)
	}
}

func TestNewLMTPServer(t *testing.T) {
	s := smtptest.NewLMTPServer()
	dir := s.Addr[:strings.LastIndex(s.Addr, "/")]
	if s.Network != "unix" || !s.LMTP {
		t.Fatalf("Network, LMTP = %q, %v; want unix, true", s.Network, s.LMTP)
	}
	r := newRaw(t, s)
	if code, msg := r.cmd("EHLO client.example"); code != 500 {
		t.Errorf("EHLO on an LMTP server = %d %q, want 500", code, msg)
	}
	r.must(250, "LHLO client.example")
	_, replies := lmtpSend(t, s, []string{"a@example.org", "b@example.org"}, 0)
	if len(replies) != 2 || replies[0].code != 250 || replies[1].code != 250 {
		t.Errorf("replies = %v, want two 250", replies)
	}
	if msgs := s.Messages(); len(msgs) != 1 || len(msgs[0].Delivered) != 2 {
		t.Errorf("messages = %+v", msgs)
	}
	s.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("socket directory %s still exists after Close: %v", dir, err)
	}
}

func TestSMTPServerRefusesLHLO(t *testing.T) {
	s := smtptest.NewServer()
	defer s.Close()
	r := newRaw(t, s)
	if code, _ := r.cmd("LHLO client.example"); code != 500 {
		t.Errorf("LHLO on an SMTP server = %d, want 500", code)
	}
}
