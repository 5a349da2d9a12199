package smtptest

import (
	"context"
	"io"
	"slices"
	"sync"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
)

// Recorder is an in-memory transport.Transport for tests, in the manner of
// httptest.ResponseRecorder: it records what each Send is given and accepts
// the message for every recipient, or returns what Result decides. It does
// no network I/O.
//
// Unlike a real transport, Send reads the whole message into memory and
// keeps it; the bytes are recorded as read, without line-ending
// conversion. Use it to test middleware and code that takes a
// transport.Transport.
//
// The zero Recorder is ready to use. A Recorder is safe for concurrent use
// by multiple goroutines.
type Recorder struct {
	// Result, if not nil, decides the outcome of each Send: it receives a
	// copy of the envelope, after the message was read and recorded, and
	// Send returns what it returns. It should keep the transport.Transport
	// contract (one RcptResult per recipient, in envelope order). If nil,
	// every recipient is Accepted with the reply "250 2.0.0 OK: recorded"
	// and Attempts 1.
	Result func(env *envelope.Envelope) (*transport.Result, error)

	mu       sync.Mutex
	messages []Message
}

var _ transport.Transport = (*Recorder)(nil)

// Send reads msg to its end, records it with a copy of env, and returns the
// outcome. If ctx is done before Send starts, or msg cannot be read, nothing
// is recorded and every recipient is TempFailed, with an *transport.OpError
// (step OpMail or OpData) as the error. Send refuses an envelope without
// recipients with an *transport.OpError at step OpEnvelope; it checks
// nothing else of env.
func (r *Recorder) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
	if env == nil {
		return nil, &transport.OpError{Op: transport.OpEnvelope, Err: &envelope.Error{Field: "envelope", Err: envelope.ErrNoRecipients}}
	}
	if len(env.To) == 0 {
		return &transport.Result{}, &transport.OpError{Op: transport.OpEnvelope, Err: &envelope.Error{Field: "to", Err: envelope.ErrNoRecipients}}
	}
	if ctx.Err() != nil {
		return failAll(env, transport.OpMail, context.Cause(ctx))
	}
	data, err := io.ReadAll(msg)
	if err != nil {
		return failAll(env, transport.OpData, err)
	}

	m := Message{
		From: env.From,
		MailOptions: MailOptions{
			Size:       env.Size,
			Body:       env.Body,
			UTF8:       env.UTF8,
			RequireTLS: env.RequireTLS,
			Return:     env.Return,
			EnvID:      env.EnvID,
		},
		Data: data,
	}
	for _, rc := range env.To {
		m.To = append(m.To, rc.Addr)
		m.RcptOptions = append(m.RcptOptions, RcptOptions{Notify: slices.Clone(rc.Notify), ORcpt: rc.ORcpt})
	}

	var res *transport.Result
	if r.Result != nil {
		res, err = r.Result(cloneEnvelope(env))
	} else {
		res = acceptAll(env)
	}
	m.Delivered = res.Accepted()

	r.mu.Lock()
	r.messages = append(r.messages, m)
	r.mu.Unlock()
	return res, err
}

// Messages returns the messages recorded so far, in the order Send
// recorded them. Delivered holds the recipients the returned Result
// accepted.
func (r *Recorder) Messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.messages)
}

// Reset forgets the messages recorded so far.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.messages = nil
	r.mu.Unlock()
}

func acceptAll(env *envelope.Envelope) *transport.Result {
	res := &transport.Result{
		Rcpts: make([]transport.RcptResult, len(env.To)),
		Reply: recordedReply(),
	}
	for i, rc := range env.To {
		res.Rcpts[i] = transport.RcptResult{Addr: rc.Addr, Outcome: transport.Accepted, Reply: recordedReply(), Attempts: 1}
	}
	return res
}

func recordedReply() *transport.Reply {
	return &transport.Reply{Code: 250, EnhancedCode: transport.EnhancedCode{2, 0, 0}, Text: "OK: recorded"}
}

// failAll returns a Result with every recipient TempFailed by err, and err
// as an *transport.OpError at step op.
func failAll(env *envelope.Envelope, op transport.Op, err error) (*transport.Result, error) {
	res := &transport.Result{Rcpts: make([]transport.RcptResult, len(env.To))}
	for i, rc := range env.To {
		res.Rcpts[i] = transport.RcptResult{Addr: rc.Addr, Outcome: transport.TempFailed, Err: err, Attempts: 1}
	}
	return res, &transport.OpError{Op: op, Err: err}
}

// cloneEnvelope returns a deep copy of env.
func cloneEnvelope(env *envelope.Envelope) *envelope.Envelope {
	c := *env
	c.To = slices.Clone(env.To)
	for i := range c.To {
		c.To[i].Notify = slices.Clone(c.To[i].Notify)
	}
	return &c
}
