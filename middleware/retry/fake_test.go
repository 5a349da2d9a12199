package retry_test

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
)

// fakeServer is a transport that keeps the transport contract and follows a
// script: per recipient, a queue of RCPT replies (nil accepts), and per
// call, an optional failure of the whole transaction at MAIL (before the
// body is read), in DATA (after it is read) or after the final dot.
type fakeServer struct {
	mu        sync.Mutex
	rcpt      map[string][]*transport.ReplyError // popped each time the recipient is sent
	mailErr   []error                            // popped per call; failure at MAIL
	dataErr   []error                            // popped per call; failure after reading the body
	lostAtEnd []bool                             // popped per call; connection lost after the dot
	calls     [][]string                         // recipients of each call
	bodies    []string                           // body read by each call that read it
	delivered map[string]int                     // copies accepted per recipient
	partial   int                                // if > 0, read only this many bytes in DATA failures
}

func newFakeServer() *fakeServer {
	return &fakeServer{rcpt: map[string][]*transport.ReplyError{}, delivered: map[string]int{}}
}

func pop[T any](q *[]T) (T, bool) {
	var zero T
	if len(*q) == 0 {
		return zero, false
	}
	v := (*q)[0]
	*q = (*q)[1:]
	return v, true
}

func (s *fakeServer) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	addrs := make([]string, len(env.To))
	for i, r := range env.To {
		addrs[i] = r.Addr
	}
	s.calls = append(s.calls, addrs)
	res := &transport.Result{Rcpts: make([]transport.RcptResult, len(env.To))}
	all := make([]int, len(addrs))
	for i := range all {
		all[i] = i
	}
	// fail ends the transaction at op: the recipients at idx get outcome.
	fail := func(op transport.Op, err error, outcome transport.Outcome, idx []int) (*transport.Result, error) {
		oe := &transport.OpError{Op: op, Addr: "mx.example.net:25", Err: err}
		for _, i := range idx {
			res.Rcpts[i] = transport.RcptResult{Addr: addrs[i], Outcome: outcome, Err: oe, Attempts: 1}
		}
		return res, oe
	}
	if err, _ := pop(&s.mailErr); err != nil {
		return fail(transport.OpMail, err, transport.TempFailed, all)
	}
	var accepted []int
	var firstRefusal error
	for i, a := range addrs {
		q := s.rcpt[a]
		re, _ := pop(&q)
		s.rcpt[a] = q
		rr := transport.RcptResult{Addr: a, Attempts: 1}
		if re != nil {
			rr.Outcome = transport.TempFailed
			if re.Code >= 500 {
				rr.Outcome = transport.PermFailed
			}
			rr.Reply, rr.Err = re.Reply(), re
			if firstRefusal == nil {
				firstRefusal = re
			}
		} else {
			accepted = append(accepted, i)
		}
		res.Rcpts[i] = rr
	}
	if len(accepted) == 0 {
		return res, &transport.OpError{Op: transport.OpRcpt, Addr: "mx.example.net:25", Err: firstRefusal}
	}
	if err, _ := pop(&s.dataErr); err != nil {
		if s.partial > 0 {
			buf := make([]byte, s.partial)
			n, _ := io.ReadFull(msg, buf)
			s.bodies = append(s.bodies, string(buf[:n]))
		} else {
			b, _ := io.ReadAll(msg)
			s.bodies = append(s.bodies, string(b))
		}
		return fail(transport.OpData, err, transport.TempFailed, accepted)
	}
	b, err := io.ReadAll(msg)
	if err != nil {
		return fail(transport.OpData, err, transport.TempFailed, accepted)
	}
	s.bodies = append(s.bodies, string(b))
	if lost, _ := pop(&s.lostAtEnd); lost {
		for _, i := range accepted {
			s.delivered[addrs[i]]++ // the server did deliver it
		}
		return fail(transport.OpEndOfData, io.ErrUnexpectedEOF, transport.Unknown, accepted)
	}
	reply := &transport.Reply{Code: 250, EnhancedCode: transport.EnhancedCode{2, 0, 0}, Text: "queued"}
	for _, i := range accepted {
		res.Rcpts[i].Outcome = transport.Accepted
		res.Rcpts[i].Reply = reply
		s.delivered[addrs[i]]++
	}
	res.Reply = reply
	return res, res.Err()
}

var _ transport.Transport = (*fakeServer)(nil)

func reply(code int, enh [3]int, text string) *transport.ReplyError {
	return &transport.ReplyError{Code: code, EnhancedCode: enh, Message: text}
}

func env(addrs ...string) *envelope.Envelope {
	e := &envelope.Envelope{From: "sender@example.org", Size: 1234, Body: envelope.Body8BitMIME, EnvID: "id-1", Return: envelope.ReturnHeaders}
	for _, a := range addrs {
		e.To = append(e.To, envelope.Recipient{Addr: a, Notify: []envelope.DSNNotify{envelope.NotifyFailure, envelope.NotifyDelay}, ORcpt: "orig-" + a})
	}
	return e
}

// onlyReader hides every method of r but Read.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

var errBoom = errors.New("boom")
