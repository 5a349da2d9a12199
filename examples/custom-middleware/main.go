// Custom-middleware sends through a middleware that mailwire does not
// have: package stamp provides "header-stamp", which adds a header field
// to every message, and registers it with package config from its init
// function; custom-middleware.yaml selects it by name, with its
// parameters.
//
// By default the program sends through an embedded server and prints the
// top of the message the server received.
//
//	go run ./examples/custom-middleware
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

	// Registers the header-stamp middleware. Without this import, loading
	// the file fails with: unknown middleware "header-stamp" (forgotten
	// import?).
	_ "github.com/mailwire/mailwire/examples/custom-middleware/stamp"
)

//go:embed custom-middleware.yaml
var customMiddlewareYAML []byte

func main() {
	if err := run(context.Background(), os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "custom-middleware:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("custom-middleware", flag.ContinueOnError)
	file := fs.String("config", "", "configuration file (default: custom-middleware.yaml, embedded)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Parse("custom-middleware.yaml", customMiddlewareYAML)
	if *file != "" {
		cfg, err = config.Load(*file)
	}
	if err != nil {
		return err
	}

	srv := smtptest.NewStartTLSServer()
	defer srv.Close()
	tr, err := cfg.Transport("", config.WithAdjust(func(t transport.Transport) {
		if s, ok := t.(*transport.SMTP); ok {
			s.Dialer = dialer.Fixed("tcp", srv.Addr, nil)
			s.TLSConfig = srv.ClientTLSConfig()
		}
	}))
	if err != nil {
		return err
	}
	defer transport.CloseIdleConnections(tr)

	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	msg := "From: billing@example.org\r\nTo: bob@example.org\r\nSubject: Your invoice\r\n\r\nAttached.\r\n"
	if _, err := tr.Send(ctx, envelope.New("billing@example.org", "bob@example.org"), strings.NewReader(msg)); err != nil {
		return err
	}
	header, _, _ := strings.Cut(string(srv.Messages()[0].Data), "\r\n\r\n")
	fmt.Fprintf(out, "the server received:\n%s\n", strings.ReplaceAll(header, "\r\n", "\n"))
	return nil
}
