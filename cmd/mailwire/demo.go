package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// demoMessage is the message the demo sends. Its Bcc is extracted into the
// envelope and never transmitted.
const demoMessage = `From: Alice <alice@example.org>
To: Bob <bob@example.org>, Nobody <nobody@example.org>
Bcc: carol@example.org
Subject: Hello from mailwire
Message-ID: <demo@mailwire.example>

Hello Bob,
.this line starts with a dot and is dot-stuffed on the wire.
`

const demoUsage = `Usage: mailwire demo [--quiet]

Starts in-process SMTP and LMTP servers on loopback and a Unix socket and
sends one message through plain SMTP, STARTTLS, implicit TLS and LMTP,
printing each recipient's outcome and the redacted transcript. No network
access is needed.

Flags:`

// demo starts embedded servers and sends the same message through each
// security mode, printing per-recipient results and the redacted
// transcript.
func demo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	quiet := fs.Bool("quiet", false, "print results only, without transcripts")
	if _, code, ok := parseCommand(fs, args, demoUsage, stdout, stderr); !ok {
		return code
	}
	refuse := func(to string, _ smtptest.RcptOptions) error {
		if strings.HasPrefix(to, "nobody@") {
			return &transport.ReplyError{Code: 550, EnhancedCode: transport.EnhancedCode{5, 1, 1}, Message: "no such user here"}
		}
		return nil
	}
	type mode struct {
		name     string
		security transport.Security
		lmtp     bool
	}
	modes := []mode{
		{"plain SMTP", transport.Plaintext, false},
		{"SMTP with STARTTLS", transport.StartTLS, false},
		{"SMTP over implicit TLS", transport.ImplicitTLS, false},
		{"LMTP over a Unix socket", transport.Plaintext, true},
	}
	code := exitOK
	for _, m := range modes {
		srv := smtptest.NewUnstartedServer()
		srv.Security = m.security
		srv.Rcpt = refuse
		if m.lmtp {
			srv.LMTP, srv.Network = true, "unix"
		}
		srv.Start()
		var tr transport.Transport
		if m.lmtp {
			tr = srv.LMTPTransport()
		} else {
			tr = srv.Transport()
		}
		var transcript bytes.Buffer
		switch t := tr.(type) {
		case *transport.SMTP:
			t.Debug = &transcript
			t.LocalName = "demo.mailwire.example"
		case *transport.LMTP:
			t.Debug = &transcript
			t.LocalName = "demo.mailwire.example"
		}
		fmt.Fprintf(stdout, "== %s (%s)\n", m.name, srv.URL())
		env, body, err := envelope.FromMessage(strings.NewReader(demoMessage))
		if err != nil {
			fmt.Fprintf(stderr, "mailwire: %v\n", err)
			srv.Close()
			return exitSoftware
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := tr.Send(ctx, env, body)
		cancel()
		if res != nil {
			for _, rr := range res.Rcpts {
				line := fmt.Sprintf("   %-22s %-12s", "<"+rr.Addr+">", rr.Outcome)
				switch {
				case rr.Reply != nil:
					line += " " + rr.Reply.String()
				case rr.Err != nil:
					line += " " + rr.Err.Error()
				}
				fmt.Fprintln(stdout, line)
			}
		}
		switch {
		case err == nil:
			fmt.Fprintln(stdout, "   all recipients accepted")
		case res != nil && res.Count(transport.Accepted) > 0:
			fmt.Fprintf(stdout, "   partial success: %d of %d accepted\n", res.Count(transport.Accepted), len(res.Rcpts))
		default:
			fmt.Fprintf(stdout, "   failed: %v\n", err)
			code = exitSoftware
		}
		msgs := srv.Messages()
		if len(msgs) != 1 || bytes.Contains(msgs[0].Data, []byte("Bcc:")) {
			fmt.Fprintf(stdout, "   unexpected: server recorded %d messages\n", len(msgs))
			code = exitSoftware
		} else {
			fmt.Fprintf(stdout, "   server stored %d bytes for %v (no Bcc header)\n", len(msgs[0].Data), msgs[0].Delivered)
		}
		if !*quiet {
			fmt.Fprintln(stdout, "   transcript:")
			for _, l := range strings.SplitAfter(strings.TrimRight(transcript.String(), "\n"), "\n") {
				fmt.Fprintf(stdout, "     %s", l)
			}
			fmt.Fprintln(stdout)
		}
		srv.Close()
	}
	return code
}
