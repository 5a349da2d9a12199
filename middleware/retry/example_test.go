package retry_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/middleware/retry"
	"github.com/mailwire/mailwire/transport"
)

// A server that answers 450 to carol the first time, and accepts everyone
// else, is sent the message twice: once for bob and carol, then for carol
// alone. Bob receives one copy.
func ExampleNew() {
	busy := map[string]bool{"carol@example.org": true}
	server := transport.Func(func(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
		var to []string
		res := &transport.Result{}
		for _, r := range env.To {
			to = append(to, r.Addr)
			rr := transport.RcptResult{Addr: r.Addr, Outcome: transport.Accepted, Attempts: 1}
			if busy[r.Addr] {
				busy[r.Addr] = false
				re := &transport.ReplyError{Code: 450, EnhancedCode: transport.EnhancedCode{4, 2, 1}, Message: "mailbox busy"}
				rr.Outcome, rr.Reply, rr.Err = transport.TempFailed, re.Reply(), re
			}
			res.Rcpts = append(res.Rcpts, rr)
		}
		io.Copy(io.Discard, msg)
		fmt.Println("transaction for", to)
		return res, res.Err()
	})

	t := retry.New(
		retry.WithMaxAttempts(4),
		retry.WithBackoff(retry.Exponential(10*time.Millisecond, time.Second)),
		retry.WithNotify(func(attempt int, err error, wait time.Duration) {
			fmt.Println("attempt", attempt, "failed:", err)
		}),
	)(server)

	env := &envelope.Envelope{From: "alice@example.org", To: []envelope.Recipient{{Addr: "bob@example.org"}, {Addr: "carol@example.org"}}}
	// A strings.Reader is an io.Seeker, so the body can be read again.
	res, err := t.Send(context.Background(), env, strings.NewReader("Subject: hi\r\n\r\nhello\r\n"))
	fmt.Println("err:", err)
	for _, rr := range res.Rcpts {
		fmt.Println(rr.Addr, rr.Outcome, "after", rr.Attempts, "attempt(s)")
	}
	// Output:
	// transaction for [bob@example.org carol@example.org]
	// attempt 1 failed: <carol@example.org>: 450 4.2.1 mailbox busy
	// transaction for [carol@example.org]
	// err: <nil>
	// bob@example.org accepted after 1 attempt(s)
	// carol@example.org accepted after 2 attempt(s)
}

// A body that is generated rather than stored can be regenerated for each
// attempt.
func ExampleReopenFunc() {
	render := func() (io.Reader, error) {
		fmt.Println("rendering the message")
		return strings.NewReader("Subject: report\r\n\r\nfigures\r\n"), nil
	}
	body := retry.ReopenFunc(render)
	defer body.Close()

	first := true
	server := transport.Func(func(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
		b, _ := io.ReadAll(msg)
		fmt.Printf("server read %d bytes\n", len(b))
		res := &transport.Result{Rcpts: []transport.RcptResult{{Addr: env.To[0].Addr, Outcome: transport.Accepted, Attempts: 1}}}
		if first {
			// The connection dropped during DATA: certainly not delivered.
			first = false
			err := &transport.OpError{Op: transport.OpData, Addr: "mx.example.net:25", Err: io.ErrUnexpectedEOF}
			res.Rcpts[0].Outcome, res.Rcpts[0].Err = transport.TempFailed, err
			return res, err
		}
		return res, nil
	})

	t := retry.New(retry.WithBackoff(func(int) time.Duration { return 0 }))(server)
	env := &envelope.Envelope{From: "alice@example.org", To: []envelope.Recipient{{Addr: "bob@example.org"}}}
	_, err := t.Send(context.Background(), env, body)
	fmt.Println("err:", err)
	// Output:
	// rendering the message
	// server read 28 bytes
	// rendering the message
	// server read 28 bytes
	// err: <nil>
}
