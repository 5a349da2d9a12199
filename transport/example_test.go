package transport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

func ExampleSMTP_Send() {
	// An in-process server stands in for a real one; it offers STARTTLS
	// with a test certificate that its Transport trusts.
	srv := smtptest.NewStartTLSServer()
	defer srv.Close()

	tr := srv.Transport() // &transport.SMTP{Addr: ..., TLSConfig: ...}
	env := envelope.New("alice@example.org", "bob@example.org", "carol@example.org")
	msg := strings.NewReader("Subject: hello\r\n\r\nHi!\r\n")

	res, err := tr.Send(context.Background(), env, msg)
	if err != nil {
		fmt.Println("send failed:", err)
	}
	for _, rr := range res.Rcpts {
		fmt.Println(rr.Addr, rr.Outcome)
	}
	fmt.Println("messages on the server:", len(srv.Messages()))
	// Output:
	// bob@example.org accepted
	// carol@example.org accepted
	// messages on the server: 1
}

func ExampleSMTP_Send_partial() {
	srv := smtptest.NewUnstartedServer()
	srv.Security = transport.Plaintext
	srv.Rcpt = func(to string, _ smtptest.RcptOptions) error {
		if to == "nobody@example.org" {
			return &transport.ReplyError{Code: 550, EnhancedCode: transport.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	}
	srv.Start()
	defer srv.Close()

	env := envelope.New("alice@example.org", "bob@example.org", "nobody@example.org")
	res, err := srv.Transport().Send(context.Background(), env, strings.NewReader("Subject: hi\r\n\r\nHi\r\n"))

	// The message went to bob; the error names each refused recipient.
	fmt.Println("accepted:", res.Accepted())
	fmt.Println("error:", err)
	fmt.Println("permanent:", errors.Is(err, transport.ErrPermanent))
	// Output:
	// accepted: [bob@example.org]
	// error: <nobody@example.org>: 550 5.1.1 no such user
	// permanent: true
}

func ExampleLMTP_Send() {
	// An LMTP server on a Unix socket, as Dovecot or Cyrus would offer.
	srv := smtptest.NewUnstartedServer()
	srv.LMTP = true
	srv.Network = "unix"
	srv.Security = transport.Plaintext
	srv.LMTPData = func(_ *smtptest.Message, rcpt string) error {
		if rcpt == "full@example.org" {
			return &transport.ReplyError{Code: 552, EnhancedCode: transport.EnhancedCode{5, 2, 2}, Message: "mailbox full"}
		}
		return nil
	}
	srv.Start()
	defer srv.Close()

	tr := &transport.LMTP{Addr: srv.Addr} // a path: network "unix"
	env := envelope.New("alice@example.org", "bob@example.org", "full@example.org")
	res, _ := tr.Send(context.Background(), env, strings.NewReader("Subject: hi\r\n\r\nHi\r\n"))
	for _, rr := range res.Rcpts {
		fmt.Println(rr.Addr, rr.Outcome, rr.Reply.Code)
	}
	// Output:
	// bob@example.org accepted 250
	// full@example.org perm-failed 552
}

func ExampleSMTP_Dial() {
	srv := smtptest.NewServer() // plain SMTP on loopback
	defer srv.Close()

	tr := srv.Transport()
	c, err := tr.Dial(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	ok, _ := c.Extension("PIPELINING")
	fmt.Println("pipelining:", ok)
	for i := range 3 {
		env := envelope.New("alice@example.org", fmt.Sprintf("user%d@example.org", i))
		if _, err := c.Send(context.Background(), env, strings.NewReader("Subject: hi\r\n\r\nHi\r\n")); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println("noop:", c.Noop(context.Background()))
	fmt.Println("messages:", len(srv.Messages()))
	// Output:
	// pipelining: true
	// noop: <nil>
	// messages: 3
}

func ExampleFromURL() {
	for _, u := range []string{
		"smtp://mail.example.org",
		"submission://mail.example.org",
		"smtps://mail.example.org",
		"smtp://127.0.0.1:2525?tls=none",
		"lmtp:///run/dovecot/lmtp",
	} {
		tr, err := transport.FromURL(u)
		if err != nil {
			fmt.Println(err)
			continue
		}
		switch t := tr.(type) {
		case *transport.SMTP:
			fmt.Println("SMTP", t.Addr, t.Security)
		case *transport.LMTP:
			fmt.Println("LMTP", t.Network, t.Addr)
		}
	}
	_, err := transport.FromURL("smtp://user:pass@mail.example.org")
	fmt.Println(err != nil)
	// Output:
	// SMTP mail.example.org:25 starttls
	// SMTP mail.example.org:587 starttls
	// SMTP mail.example.org:465 tls
	// SMTP 127.0.0.1:2525 none
	// LMTP unix /run/dovecot/lmtp
	// true
}

func ExampleFunc() {
	// A Transport from a function: handy in tests and adapters.
	var tr transport.Transport = transport.Func(func(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
		res := &transport.Result{}
		for _, r := range env.To {
			res.Rcpts = append(res.Rcpts, transport.RcptResult{Addr: r.Addr, Outcome: transport.Accepted, Attempts: 1})
		}
		return res, nil
	})
	res, err := tr.Send(context.Background(), envelope.New("a@example.org", "b@example.org"), strings.NewReader("x"))
	fmt.Println(res.Accepted(), err)
	// Output: [b@example.org] <nil>
}
