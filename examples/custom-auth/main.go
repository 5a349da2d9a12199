// Custom-auth authenticates with a SASL mechanism that mailwire does not
// have: package demotoken registers X-DEMO-TOKEN by name from its init
// function, and custom-auth.yaml selects it by that name.
//
// By default the program sends through an embedded STARTTLS server that
// offers X-DEMO-TOKEN (its server side is in server.go), with a
// demonstration token, and prints the AUTH exchange of the transcript.
//
//	go run ./examples/custom-auth
package main

import (
	"bytes"
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

	// Registers the X-DEMO-TOKEN mechanism. Without this import, the
	// file fails to load: unknown mechanism "X-DEMO-TOKEN" (forgotten
	// import?).
	"github.com/mailwire/mailwire/examples/custom-auth/demotoken"
)

//go:embed custom-auth.yaml
var customAuthYAML []byte

// demoToken is the token of the embedded server's user alice.
const demoToken = "demo-shared-token"

func main() {
	if err := run(context.Background(), os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "custom-auth:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("custom-auth", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}

	srv := smtptest.NewUnstartedServer()
	srv.Security = transport.StartTLS
	srv.RequireAuth = true
	srv.AuthMechanisms = map[string]smtptest.AuthMechanism{
		demotoken.Name: demoTokenServer(map[string]string{"alice": demoToken}),
	}
	srv.Start()
	defer srv.Close()

	os.Setenv("DEMO_TOKEN", demoToken) // what token_env names
	cfg, err := config.Parse("custom-auth.yaml", customAuthYAML)
	if err != nil {
		return err
	}
	var transcript bytes.Buffer
	tr, err := cfg.Transport("", config.WithDebug(&transcript), config.WithAdjust(func(t transport.Transport) {
		if s, ok := t.(*transport.SMTP); ok {
			// Dial the embedded server and trust its test authority; the
			// transport keeps mail.example.org, to which the credentials
			// are bound.
			s.Dialer = dialer.Fixed("tcp", srv.Addr, nil)
			s.TLSConfig = srv.ClientTLSConfig()
		}
	}))
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	msg := "From: alice@example.org\r\nTo: bob@example.org\r\nSubject: custom mechanism\r\n\r\nHello.\r\n"
	_, err = tr.Send(ctx, envelope.New("alice@example.org", "bob@example.org"), strings.NewReader(msg))
	transport.CloseIdleConnections(tr)
	for _, line := range strings.Split(transcript.String(), "\n") {
		if strings.Contains(line, "AUTH") || strings.HasPrefix(line, "S: 334") || strings.HasPrefix(line, "S: 235") || strings.HasPrefix(line, "C: [") {
			fmt.Fprintln(out, line)
		}
	}
	if err != nil {
		return err
	}
	m := srv.Messages()[0]
	fmt.Fprintf(out, "delivered for %s, authenticated as %s with %s\n", strings.Join(m.To, ", "), m.AuthUser, demotoken.Name)
	return nil
}
