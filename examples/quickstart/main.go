// Quickstart sends one message with mailwire and prints the result and the
// transcript of the SMTP session.
//
//	go run ./examples/quickstart                        # through an embedded server
//	go run ./examples/quickstart -url smtp://localhost:25?tls=none -to you@example.org
//
// By default it starts an embedded SMTP server (package smtptest) that
// offers STARTTLS with a test certificate, so it runs without a network.
// With -url it sends to that server instead (see transport.FromURL).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

func main() {
	if err := run(context.Background(), os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	url := fs.String("url", "", "server URL such as smtp://localhost:25?tls=none (default: an embedded server)")
	from := fs.String("from", "alice@example.org", "sender")
	to := fs.String("to", "bob@example.org", "recipient")
	if err := fs.Parse(args); err != nil {
		return err
	}

	var transcript bytes.Buffer
	var tr *transport.SMTP
	if *url == "" {
		// An SMTP server in this process that offers STARTTLS with a
		// certificate from a test authority.
		srv := smtptest.NewStartTLSServer()
		defer srv.Close()
		tr = &transport.SMTP{
			Addr:      srv.Addr,              // "127.0.0.1:port"
			Security:  transport.StartTLS,    // the default: STARTTLS is required
			TLSConfig: srv.ClientTLSConfig(), // trust the test authority; leave nil for a real server
			Debug:     &transcript,           // the session, AUTH redacted
		}
	} else {
		t, err := transport.FromURL(*url)
		if err != nil {
			return err
		}
		smtp, ok := t.(*transport.SMTP)
		if !ok {
			return fmt.Errorf("%s is not an SMTP URL", *url)
		}
		tr = smtp
		tr.Debug = &transcript
	}

	msg := "From: " + *from + "\r\n" +
		"To: " + *to + "\r\n" +
		"Subject: Hello from mailwire\r\n" +
		"\r\n" +
		"It works.\r\n"
	// The envelope comes from the header, as smtplib's send_message does.
	env, body, err := envelope.FromMessage(strings.NewReader(msg))
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res, err := tr.Send(ctx, env, body)
	// The transport keeps the connection for the next Send; this program
	// sends no more, so it closes it (with QUIT).
	tr.CloseIdleConnections()
	if res != nil {
		for _, r := range res.Rcpts {
			fmt.Fprintf(out, "%s: %s", r.Addr, r.Outcome)
			if r.Reply != nil {
				fmt.Fprintf(out, " (%s)", r.Reply)
			}
			fmt.Fprintln(out)
		}
	}
	fmt.Fprintf(out, "\ntranscript:\n%s", transcript.String())
	return err
}
