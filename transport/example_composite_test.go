package transport_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// A primary relay that is shutting down answers MAIL with 421: nothing can
// have been delivered, so Failover hands the message to the backup.
func ExampleFailover() {
	primary := smtptest.NewUnstartedServer()
	primary.Mail = func(string, smtptest.MailOptions) error {
		return &transport.ReplyError{Code: 421, EnhancedCode: transport.EnhancedCode{4, 3, 2}, Message: "shutting down"}
	}
	primary.Start()
	defer primary.Close()
	backup := smtptest.NewServer()
	defer backup.Close()

	t := transport.Failover(primary.Transport(), backup.Transport())

	env := envelope.New("alice@example.org", "bob@example.org")
	msg := strings.NewReader("From: alice@example.org\r\nTo: bob@example.org\r\nSubject: hello\r\n\r\nHi Bob.\r\n")
	res, err := t.Send(context.Background(), env, msg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("accepted:", res.Accepted())
	fmt.Println("attempts:", res.Rcpts[0].Attempts)
	fmt.Println("primary got:", len(primary.Messages()))
	fmt.Println("backup got:", len(backup.Messages()))
	// Output:
	// accepted: [bob@example.org]
	// attempts: 2
	// primary got: 0
	// backup got: 1
}

// When every relay fails before anything could be delivered, the error says
// what each answered, and is classified like the last answer.
func ExampleFailoverError() {
	busy := func() *smtptest.Server {
		s := smtptest.NewUnstartedServer()
		s.Mail = func(string, smtptest.MailOptions) error {
			return &transport.ReplyError{Code: 421, EnhancedCode: transport.EnhancedCode{4, 3, 2}, Message: "try later"}
		}
		s.Start()
		return s
	}
	primary, backup := busy(), busy()
	defer primary.Close()
	defer backup.Close()

	t := transport.Failover(primary.Transport(), backup.Transport())
	_, err := t.Send(context.Background(), envelope.New("alice@example.org", "bob@example.org"),
		strings.NewReader("Subject: hello\r\n\r\nHi.\r\n"))

	var fe *transport.FailoverError
	if errors.As(err, &fe) {
		for _, e := range fe.Previous.Errors {
			prev := e.(*transport.FailoverError)
			fmt.Println("member", prev.Index, "answered:", strings.Contains(prev.Err.Error(), "421 4.3.2 try later"))
		}
		fmt.Println("last member:", fe.Index)
	}
	fmt.Println("retry later:", errors.Is(err, transport.ErrTransient))
	// Output:
	// member 0 answered: true
	// last member: 1
	// retry later: true
}

// Hand the message to the local mail system, as cron and many web
// applications do. (This example does not run: it would queue real mail.)
func ExampleSendmail() {
	// Runs: /usr/sbin/sendmail -i -f alice@example.org -- bob@example.org
	t := &transport.Sendmail{}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env := envelope.New("alice@example.org", "bob@example.org")
	msg := strings.NewReader("From: alice@example.org\r\nTo: bob@example.org\r\nSubject: nightly report\r\n\r\nAll green.\r\n")
	_, err := t.Send(ctx, env, msg)

	var ee *transport.ExitError
	switch {
	case err == nil:
		fmt.Println("queued")
	case errors.As(err, &ee) && errors.Is(err, transport.ErrTransient):
		fmt.Println("try again later; sendmail said:", ee.Stderr)
	case errors.As(err, &ee):
		fmt.Println("refused with status", ee.Code, "; sendmail said:", ee.Stderr)
	default:
		fmt.Println(err) // not started, refused envelope, or ctx
	}
}
