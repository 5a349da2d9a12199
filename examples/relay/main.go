// Relay sends through a local relay on port 25, as an application server
// does when a mail server on the same host or network forwards its mail.
// relay.yaml has three profiles: local (opportunistic TLS), loopback (no
// TLS) and pair (failover between two relays).
//
// By default the program sends through every profile to embedded servers:
// one that offers STARTTLS, one that does not, and, for the failover, a
// first relay that is down. With -live it sends to the address the profile
// names.
//
//	go run ./examples/relay
//	go run ./examples/relay -live -profile local -from app@example.org -to you@example.org
package main

import (
	"context"
	_ "embed"
	"errors"
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

//go:embed relay.yaml
var relayYAML []byte

func main() {
	if err := run(context.Background(), os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	var (
		file    = fs.String("config", "", "configuration file (default: relay.yaml, embedded)")
		profile = fs.String("profile", "", "profile (default: every profile, or the file's default with -live)")
		live    = fs.Bool("live", false, "send to the relay the profile names")
		from    = fs.String("from", "app@example.org", "sender")
		to      = fs.String("to", "bob@example.org", "recipient")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Parse("relay.yaml", relayYAML)
	if *file != "" {
		cfg, err = config.Load(*file)
	}
	if err != nil {
		return err
	}
	if *live {
		tr, err := cfg.Transport(*profile)
		if err != nil {
			return err
		}
		defer transport.CloseIdleConnections(tr)
		return send(ctx, out, tr, *from, *to)
	}

	// Embedded relays: one offers STARTTLS, one does not; one is down.
	withTLS := smtptest.NewStartTLSServer()
	defer withTLS.Close()
	plain := smtptest.NewServer()
	defer plain.Close()
	down := smtptest.NewServer()
	down.Close()
	relays := map[string]*smtptest.Server{
		"localhost:25":          withTLS,
		"127.0.0.1:25":          plain,
		"relay1.example.org:25": down,
		"relay2.example.org:25": plain,
	}
	profiles := cfg.Profiles()
	if *profile != "" {
		profiles = []string{*profile}
	}
	for _, p := range profiles {
		fmt.Fprintf(out, "== profile %s\n", p)
		tr, err := cfg.Transport(p, config.WithAdjust(func(t transport.Transport) {
			if s, ok := t.(*transport.SMTP); ok {
				srv := relays[s.Addr]
				if srv == nil {
					return
				}
				s.Dialer = dialer.Fixed("tcp", srv.Addr, nil)
				s.TLSConfig = srv.ClientTLSConfig() // trust the embedded server's test authority
			}
		}))
		if err != nil {
			return err
		}
		err = send(ctx, out, tr, *from, *to)
		transport.CloseIdleConnections(tr)
		if err != nil {
			return err
		}
	}
	for _, r := range []struct {
		name string
		srv  *smtptest.Server
	}{{"the relay with STARTTLS", withTLS}, {"the relay without TLS", plain}} {
		for _, m := range r.srv.Messages() {
			fmt.Fprintf(out, "%s received a message for %v (TLS: %v)\n", r.name, m.To, m.TLS)
		}
	}
	return nil
}

func send(ctx context.Context, out io.Writer, tr transport.Transport, from, to string) error {
	msg := "From: " + from + "\r\nTo: " + to + "\r\nSubject: relay example\r\n\r\nRelayed.\r\n"
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res, err := tr.Send(ctx, envelope.New(from, to), strings.NewReader(msg))
	if res != nil {
		for _, r := range res.Rcpts {
			fmt.Fprintf(out, "  %s: %s after %d attempt(s)\n", r.Addr, r.Outcome, r.Attempts)
		}
	}
	var fe *transport.FailoverError
	if errors.As(err, &fe) {
		fmt.Fprintf(out, "  failover: %v\n", err)
	}
	return err
}
