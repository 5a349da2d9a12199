// Testing shows how to test your own code that sends mail with package
// smtptest. welcome.go is a small piece of a sign-up service, Welcomer,
// that sends a welcome message through any transport.Transport;
// welcome_test.go tests it against a real in-process SMTP server (checking
// what the server received, and making it refuse with chosen replies) and
// against an smtptest.Recorder.
//
// The program itself runs the Welcomer against an embedded server and
// prints what the server received.
//
//	go run ./examples/testing
//	go test ./examples/testing
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

func main() {
	if err := run(context.Background(), os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "testing:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, _ []string) error {
	srv := smtptest.NewServer()
	defer srv.Close()
	tr := srv.Transport()
	defer transport.CloseIdleConnections(tr)

	w := &Welcomer{Transport: tr, From: "welcome@example.org"}
	for _, u := range []struct{ name, addr string }{{"Ann", "ann@example.org"}, {"Bo", "bo@example.org"}} {
		fmt.Fprintf(out, "%s: %s\n", u.addr, afterSignUp(w.Welcome(ctx, u.name, u.addr)))
	}
	for _, m := range srv.Messages() {
		fmt.Fprintf(out, "%s -> %v: %d bytes\n", m.From, m.To, m.Size)
	}
	return nil
}

// afterSignUp says what the sign-up handler does with the Welcomer's
// answer. The classes come from the transport's errors, whatever wraps
// them.
func afterSignUp(err error) string {
	switch {
	case err == nil:
		return "sent"
	case errors.Is(err, transport.ErrTransient):
		// Certainly not delivered, and a later attempt may work (a 4yz
		// reply, a connection lost before the end of the data).
		return "queued for a later attempt"
	case errors.Is(err, transport.ErrUnknownOutcome):
		// Lost after the final dot: the server may have the message.
		// Sending it again could deliver it twice.
		return "perhaps sent: not sent again"
	case errors.Is(err, transport.ErrPermanent):
		// Refused (a 5yz reply): the same message will be refused again.
		return "refused: ask the user to check the address"
	default:
		// A TLS or certificate failure, a refused insecure AUTH, a
		// context deadline, bad input: a problem to fix, not to retry.
		return "not sent: " + err.Error()
	}
}
