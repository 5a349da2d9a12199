package smtptest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/smtp"
	"net/textproto"
	"strings"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

func ExampleNewServer() {
	s := smtptest.NewServer()
	defer s.Close()

	msg := "From: alice@example.org\r\nTo: bob@example.org\r\nSubject: hello\r\n\r\nHi Bob.\r\n"
	err := smtp.SendMail(s.Addr, nil, "alice@example.org", []string{"bob@example.org"}, []byte(msg))
	if err != nil {
		log.Fatal(err)
	}

	for _, m := range s.Messages() {
		fmt.Println("from:", m.From)
		fmt.Println("to:", m.To)
		fmt.Println("TLS:", m.TLS)
		fmt.Printf("data: %q\n", m.Data)
	}
	// Output:
	// from: alice@example.org
	// to: [bob@example.org]
	// TLS: false
	// data: "From: alice@example.org\r\nTo: bob@example.org\r\nSubject: hello\r\n\r\nHi Bob.\r\n"
}

// A hook refuses a recipient with exactly the reply a test needs.
func ExampleNewUnstartedServer_refuse() {
	s := smtptest.NewUnstartedServer()
	s.Rcpt = func(to string, _ smtptest.RcptOptions) error {
		if to == "nobody@example.org" {
			return &transport.ReplyError{Code: 550, EnhancedCode: transport.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	}
	s.Start()
	defer s.Close()

	c, err := smtp.Dial(s.Addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("alice@example.org"); err != nil {
		log.Fatal(err)
	}
	err = c.Rcpt("nobody@example.org")
	var reply *textproto.Error
	if errors.As(err, &reply) {
		fmt.Println(reply.Code, reply.Msg)
	}
	// Output: 550 5.1.1 no such user
}

// An LMTP server gives each recipient its own outcome.
func ExampleNewLMTPServer() {
	s := smtptest.NewUnstartedServer()
	s.LMTP = true
	s.Network = "unix"
	s.LMTPData = func(m *smtptest.Message, rcpt string) error {
		if rcpt == "full@example.org" {
			return &transport.ReplyError{Code: 552, EnhancedCode: transport.EnhancedCode{5, 2, 2}, Message: "mailbox full"}
		}
		return nil
	}
	s.Start()
	defer s.Close()
	// A client such as transport.LMTP (s.LMTPTransport()) delivers here;
	// Messages then lists what was delivered to whom.
	fmt.Println(strings.HasPrefix(s.URL(), "lmtp:///"))
	// Output: true
}

// A Recorder stands in for a real transport when testing code that sends.
func ExampleRecorder() {
	var rec smtptest.Recorder
	var t transport.Transport = &rec

	env := &envelope.Envelope{From: "alice@example.org", To: []envelope.Recipient{{Addr: "bob@example.org"}}}
	res, err := t.Send(context.Background(), env, strings.NewReader("Subject: hi\r\n\r\nHi.\r\n"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Accepted())
	m := rec.Messages()[0]
	fmt.Println(m.From, m.To)
	// Output:
	// [bob@example.org]
	// alice@example.org [bob@example.org]
}

// Transport returns a transport.SMTP configured for the server, trusting its
// test certificate authority.
func ExampleServer_Transport() {
	s := smtptest.NewStartTLSServer()
	defer s.Close()

	t := s.Transport()
	env := &envelope.Envelope{From: "alice@example.org", To: []envelope.Recipient{{Addr: "bob@example.org"}}}
	if _, err := t.Send(context.Background(), env, strings.NewReader("Subject: hi\r\n\r\nHi.\r\n")); err != nil {
		log.Print(err)
		return
	}
	m := s.Messages()[0]
	fmt.Println(m.To, "TLS:", m.TLS)
	// Output: [bob@example.org] TLS: true
}
