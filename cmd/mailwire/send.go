package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func send(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		from     = fs.String("from", "", "envelope sender (default: from the message's Sender or From header)")
		to       stringList
		caFile   = fs.String("ca", "", "PEM file of CA certificates to trust instead of the system roots")
		helo     = fs.String("helo", "", "name to send with EHLO (default: this host's FQDN or address literal)")
		timeout  = fs.Duration("timeout", 5*time.Minute, "bound on the whole send")
		debug    = fs.Bool("debug", false, "print the SMTP transcript to stderr (credentials redacted)")
		insecure = fs.Bool("insecure-skip-verify", false, "do not verify the server's certificate (dangerous)")
	)
	fs.Var(&to, "to", "envelope recipient; repeatable (default: the message's To, Cc and Bcc)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: mailwire send [flags] URL [FILE]\n\nSends the RFC 5322 message in FILE (or stdin). The envelope comes from the\nheader as Python's smtplib send_message does (Bcc removed) unless --from/--to\nare given.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fs.Usage()
		return exitUsage
	}
	tr, err := transport.FromURL(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "mailwire: %v\n", err)
		return exitUsage
	}
	var tlsConfig *tls.Config
	if *caFile != "" || *insecure {
		tlsConfig = &tls.Config{InsecureSkipVerify: *insecure}
		if *caFile != "" {
			pem, err := os.ReadFile(*caFile)
			if err != nil {
				fmt.Fprintf(stderr, "mailwire: %v\n", err)
				return exitNoInput
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				fmt.Fprintf(stderr, "mailwire: no certificates in %s\n", *caFile)
				return exitConfig
			}
			tlsConfig.RootCAs = pool
		}
	}
	var dbg io.Writer
	if *debug {
		dbg = stderr
	}
	switch t := tr.(type) {
	case *transport.SMTP:
		t.TLSConfig, t.LocalName, t.Debug = tlsConfig, *helo, dbg
	case *transport.LMTP:
		t.TLSConfig, t.LocalName, t.Debug = tlsConfig, *helo, dbg
	}

	var in io.Reader = stdin
	if fs.NArg() == 2 && fs.Arg(1) != "-" {
		f, err := os.Open(fs.Arg(1))
		if err != nil {
			fmt.Fprintf(stderr, "mailwire: %v\n", err)
			return exitNoInput
		}
		defer f.Close()
		in = f
	}
	env, body, err := envelope.FromMessage(bufio.NewReaderSize(in, 64<<10))
	if err != nil && !(len(to) > 0 && *from != "" && (errors.Is(err, envelope.ErrNoRecipients) || errors.Is(err, envelope.ErrNoSender))) {
		if len(to) == 0 || !errors.Is(err, envelope.ErrNoRecipients) {
			if *from == "" || !errors.Is(err, envelope.ErrNoSender) {
				fmt.Fprintf(stderr, "mailwire: %v\n", err)
				return exitDataErr
			}
		}
	}
	if env == nil {
		env = &envelope.Envelope{}
	}
	if *from != "" {
		env.From = *from
	}
	if len(to) > 0 {
		env.To = nil
		for _, a := range to {
			env.To = append(env.To, envelope.Recipient{Addr: a})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	res, err := tr.Send(ctx, env, body)
	return report(res, err, stdout, stderr)
}

// report prints one line per recipient that was not accepted and returns
// the exit code.
func report(res *transport.Result, err error, stdout, stderr io.Writer) int {
	if err == nil {
		msg := "sent"
		if res != nil && res.Reply != nil {
			msg += ": " + res.Reply.String()
		}
		fmt.Fprintf(stdout, "%s (%d recipients)\n", msg, len(res.Rcpts))
		return exitOK
	}
	if res != nil && res.Count(transport.Accepted) > 0 {
		fmt.Fprintf(stdout, "sent to %d of %d recipients\n", res.Count(transport.Accepted), len(res.Rcpts))
		for _, rr := range res.Rcpts {
			if rr.Outcome != transport.Accepted {
				fmt.Fprintf(stderr, "mailwire: refused <%s> (%s): %v\n", rr.Addr, rr.Outcome, rr.Err)
			}
		}
		return exitCode(err)
	}
	fmt.Fprintf(stderr, "mailwire: %v\n", err)
	return exitCode(err)
}

func exitCode(err error) int {
	var (
		oe *transport.OpError
		pe *transport.ProtocolError
		ee *envelope.Error
	)
	switch {
	case errors.As(err, &ee):
		return exitDataErr
	case errors.As(err, &pe):
		return exitProtocol
	case errors.As(err, &oe) && oe.Op == transport.OpAuth:
		return exitNoPerm
	case errors.Is(err, transport.ErrTransient), errors.Is(err, context.DeadlineExceeded):
		return exitTempFail
	case errors.Is(err, transport.ErrUnknownOutcome):
		return exitTempFail
	case errors.Is(err, transport.ErrPermanent):
		return exitUnavailable
	}
	return exitUnavailable
}
