package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/middleware"
	"github.com/mailwire/mailwire/transport"
)

// DenyDomains returns a Middleware that refuses, without contacting the
// server, the recipients whose domain is listed, and sends the message to
// the others.
func DenyDomains(domains ...string) middleware.Middleware {
	denied := make(map[string]bool, len(domains))
	for _, d := range domains {
		denied[strings.ToLower(d)] = true
	}
	return func(next transport.Transport) transport.Transport {
		return &denyDomains{next: next, denied: denied}
	}
}

type denyDomains struct {
	next   transport.Transport
	denied map[string]bool // read-only after construction: safe for concurrent Sends
}

// Unwrap lets transport.CloseIdleConnections reach the wrapped transport.
func (t *denyDomains) Unwrap() transport.Transport { return t.next }

// deniedError is the error of a refused recipient; it is permanent.
type deniedError struct{ domain string }

func (e *deniedError) Error() string        { return "denydomains: " + e.domain + " is denied" }
func (e *deniedError) Is(target error) bool { return target == transport.ErrPermanent }

func (t *denyDomains) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
	if env == nil {
		return t.next.Send(ctx, env, msg) // the transport reports the invalid envelope
	}
	// One RcptResult per recipient of the caller's envelope, in its order.
	res := &transport.Result{Rcpts: make([]transport.RcptResult, len(env.To))}
	var keep []int
	for i, r := range env.To {
		domain := strings.ToLower(r.Addr[strings.LastIndexByte(r.Addr, '@')+1:])
		if t.denied[domain] {
			// Attempts stays 0: no transaction included this recipient.
			res.Rcpts[i] = transport.RcptResult{Addr: r.Addr, Outcome: transport.PermFailed, Err: &deniedError{domain}}
			continue
		}
		keep = append(keep, i)
	}
	switch len(keep) {
	case len(env.To):
		return t.next.Send(ctx, env, msg) // nothing to change
	case 0:
		return res, &transport.OpError{Op: transport.OpEnvelope, Err: res.Rcpts[0].Err}
	}

	// Never modify the caller's envelope: send a copy listing the others.
	sub := *env
	sub.To = make([]envelope.Recipient, len(keep))
	for j, i := range keep {
		sub.To[j] = env.To[i]
	}
	got, err := t.next.Send(ctx, &sub, msg)
	if got == nil || len(got.Rcpts) != len(keep) {
		return nil, err // a transport that broke its contract
	}
	for j, i := range keep {
		res.Rcpts[i] = got.Rcpts[j]
	}
	res.Reply = got.Reply
	if got.Count(transport.Accepted) == 0 {
		return res, err // the whole transaction failed: keep its *OpError
	}
	return res, res.Err() // nil, or one *RcptError per recipient not accepted
}

// A middleware of your own: see docs/middleware.md for the rules it keeps.
func Example_custom() {
	t := DenyDomains("blocked.example")(acceptAll)

	env := &envelope.Envelope{From: "alice@example.org", To: []envelope.Recipient{
		{Addr: "bob@example.org"}, {Addr: "eve@blocked.example"}, {Addr: "carol@example.org"},
	}}
	res, err := t.Send(context.Background(), env, strings.NewReader("Subject: hi\r\n\r\nhello\r\n"))
	for _, rr := range res.Rcpts {
		fmt.Println(rr.Addr, rr.Outcome)
	}
	fmt.Println("err:", err)
	fmt.Println("permanent:", errors.Is(err, transport.ErrPermanent))
	// Output:
	// bob@example.org accepted
	// eve@blocked.example perm-failed
	// carol@example.org accepted
	// err: <eve@blocked.example>: denydomains: blocked.example is denied
	// permanent: true
}
