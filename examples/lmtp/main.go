// LMTP delivers a message to mailboxes over LMTP, the way an MTA hands
// mail to Dovecot over its Unix socket, and prints each recipient's own
// outcome: LMTP answers once per recipient after the data, so a full
// mailbox refuses its recipient while the others are delivered.
//
// By default the program delivers to an embedded LMTP server on a Unix
// socket whose mailbox for full@example.org is over quota. With -live it
// delivers to the socket the profile of dovecot.yaml names.
//
//	go run ./examples/lmtp
//	go run ./examples/lmtp -live -to alice@example.org
package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mailwire/mailwire/config"
	"github.com/mailwire/mailwire/dialer"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

//go:embed dovecot.yaml
var dovecotYAML []byte

func main() {
	if err := run(context.Background(), os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "lmtp:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("lmtp", flag.ContinueOnError)
	var (
		file    = fs.String("config", "", "configuration file (default: dovecot.yaml, embedded)")
		profile = fs.String("profile", "", "profile (default: the file's default)")
		live    = fs.Bool("live", false, "deliver to the socket or address the profile names")
		from    = fs.String("from", "bounce@example.org", "envelope sender")
		to      = fs.String("to", "alice@example.org,full@example.org,bob@example.org", "recipients, separated by commas")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Parse("dovecot.yaml", dovecotYAML)
	if *file != "" {
		cfg, err = config.Load(*file)
	}
	if err != nil {
		return err
	}

	var opts []config.Option
	if !*live {
		// An LMTP server on a Unix socket in a temporary directory; the
		// mailbox of full@example.org is over quota.
		srv := smtptest.NewUnstartedServer()
		srv.LMTP = true
		srv.Network = "unix"
		srv.LMTPData = func(_ *smtptest.Message, rcpt string) error {
			if rcpt == "full@example.org" {
				return &transport.ReplyError{Code: 552, EnhancedCode: transport.EnhancedCode{5, 2, 2}, Message: "Mailbox is full"}
			}
			return nil
		}
		srv.Start()
		defer srv.Close()
		// The transport keeps the socket path of the file; its dialer
		// connects to the embedded server's socket instead.
		opts = append(opts, config.WithAdjust(func(t transport.Transport) {
			if l, ok := t.(*transport.LMTP); ok {
				l.Dialer = dialer.Fixed("unix", srv.Addr, nil)
			}
		}))
	}
	tr, err := cfg.Transport(*profile, opts...)
	if err != nil {
		return err
	}
	defer transport.CloseIdleConnections(tr)

	rcpts := strings.Split(*to, ",")
	msg := "From: Example <" + *from + ">\r\nTo: undisclosed-recipients:;\r\nSubject: LMTP example\r\n\r\nDelivered over LMTP.\r\n"
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res, err := tr.Send(ctx, envelope.New(*from, rcpts...), strings.NewReader(msg))
	if res == nil {
		return err
	}
	for _, r := range res.Rcpts {
		fmt.Fprintf(out, "%s: %s", r.Addr, r.Outcome)
		if r.Reply != nil {
			fmt.Fprintf(out, " (%d %s)", r.Reply.Code, r.Reply.EnhancedCode)
		}
		fmt.Fprintln(out)
	}
	// A partial delivery is reported per recipient; the error then lists
	// the refused ones. Here a full mailbox is expected.
	if err != nil && res.Count(transport.Accepted) > 0 {
		fmt.Fprintf(out, "delivered to %d of %d recipients\n", res.Count(transport.Accepted), len(res.Rcpts))
		return nil
	}
	return err
}
