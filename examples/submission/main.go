// Submission sends a message through a submission service (port 587,
// STARTTLS, AUTH) described by a configuration file. Three files shape the
// configuration of three kinds of provider:
//
//	gmail.yaml       XOAUTH2 with an OAuth token (Gmail-style)
//	office365.yaml   XOAUTH2, or LOGIN where basic authentication remains (Microsoft 365-style)
//	ses.yaml         PLAIN with SMTP credentials, a rate limit (Amazon SES-style)
//
// By default the program loads each file and sends through each profile to
// an embedded server that speaks STARTTLS and checks the same user names,
// with demonstration credentials: it runs with no network and no account.
// The configuration is not changed: the transport still names the
// provider's host (credentials stay bound to it), and only its dialer and
// the certificate authority it trusts are pointed at the embedded server.
//
//	go run ./examples/submission
//	GMAIL_OAUTH_TOKEN=... go run ./examples/submission -live -config examples/submission/gmail.yaml -from alice@example.com -to bob@example.org
package main

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/mailwire/mailwire/config"
	"github.com/mailwire/mailwire/dialer"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// The configuration files, embedded so that the program finds them
// wherever it runs from.
//
//go:embed *.yaml
var configs embed.FS

// demo holds the credentials of the embedded server's users, and the
// environment variables through which the configurations receive them.
var demo = []struct {
	user, env, secret string
	token             bool // an OAuth token rather than a password
}{
	{"alice@example.com", "GMAIL_OAUTH_TOKEN", "demo-gmail-token", true},
	{"alice@contoso.example", "M365_OAUTH_TOKEN", "demo-m365-token", true},
	{"alice@contoso.example", "M365_PASSWORD", "demo-m365-password", false},
	{"SES-SMTP-USER-EXAMPLE", "SES_SMTP_PASSWORD", "demo-ses-password", false},
}

func main() {
	if err := run(context.Background(), os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "submission:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("submission", flag.ContinueOnError)
	var (
		file    = fs.String("config", "", "configuration file (default: each of gmail.yaml, office365.yaml and ses.yaml)")
		profile = fs.String("profile", "", "profile to use (default: every profile, or the file's default with -live)")
		live    = fs.Bool("live", false, "send to the real service the file names, with the credentials of the environment")
		from    = fs.String("from", "", "sender (with -live)")
		to      = fs.String("to", "bob@example.org", "recipient")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *live {
		if *file == "" || *from == "" {
			return errors.New("-live needs -config and -from")
		}
		cfg, err := config.Load(*file)
		if err != nil {
			return err
		}
		tr, err := cfg.Transport(*profile)
		if err != nil {
			return err
		}
		defer transport.CloseIdleConnections(tr)
		return send(ctx, out, tr, *from, *to)
	}

	// Demonstration mode: an embedded server with the users of demo.
	srv := newServer()
	defer srv.Close()
	for _, d := range demo {
		os.Setenv(d.env, d.secret) // the demonstration credentials, never real ones
	}
	files := []string{"gmail.yaml", "office365.yaml", "ses.yaml"}
	if *file != "" {
		files = []string{*file}
	}
	for _, name := range files {
		cfg, err := loadConfig(name)
		if err != nil {
			return err
		}
		profiles := cfg.Profiles()
		if *profile != "" {
			profiles = []string{*profile}
		}
		for _, p := range profiles {
			fmt.Fprintf(out, "== %s, profile %s\n", path.Base(name), p)
			var transcript bytes.Buffer
			tr, err := cfg.Transport(p, config.WithDebug(&transcript), config.WithAdjust(toServer(srv)))
			if err != nil {
				return err
			}
			from := senders[path.Base(name)]
			if from == "" {
				from = "alice@example.org"
			}
			err = send(ctx, out, tr, from, *to)
			transport.CloseIdleConnections(tr)
			for _, line := range strings.Split(transcript.String(), "\n") {
				if strings.HasPrefix(line, "C: STARTTLS") || strings.HasPrefix(line, "C: AUTH") || strings.HasPrefix(line, "S: 235") {
					fmt.Fprintln(out, "  "+line)
				}
			}
			if err != nil {
				return err
			}
			ms := srv.Messages()
			m := ms[len(ms)-1]
			fmt.Fprintf(out, "  the server authenticated %s over TLS: %v\n", m.AuthUser, m.TLS)
		}
	}
	return nil
}

// loadConfig loads a file given on the command line, or one of the
// embedded ones by its name.
func loadConfig(name string) (*config.Config, error) {
	if data, err := configs.ReadFile(name); err == nil {
		return config.Parse(name, data)
	}
	return config.Load(name)
}

// senders are the From addresses of the demonstration messages.
var senders = map[string]string{
	"gmail.yaml":     "alice@example.com",
	"office365.yaml": "alice@contoso.example",
	"ses.yaml":       "noreply@example.org", // SES sends from verified identities
}

// toServer points each SMTP transport a profile builds at srv: it dials
// srv whatever the address, and trusts srv's test certificate authority,
// verifying the certificate for srv's own name. The transport keeps the
// provider's host name, so the credentials, bound to that host, are used.
func toServer(srv *smtptest.Server) func(transport.Transport) {
	return func(t transport.Transport) {
		s, ok := t.(*transport.SMTP)
		if !ok {
			return
		}
		s.Dialer = dialer.Fixed("tcp", srv.Addr, nil)
		tc := srv.ClientTLSConfig()
		if s.TLSConfig != nil {
			tc.MinVersion = s.TLSConfig.MinVersion
		}
		s.TLSConfig = tc
	}
}

// newServer starts an SMTP server that offers STARTTLS, and AUTH only after
// it, with PLAIN, LOGIN and XOAUTH2 for the users of demo.
func newServer() *smtptest.Server {
	srv := smtptest.NewUnstartedServer()
	srv.Security = transport.StartTLS
	srv.RequireAuth = true
	srv.Users = map[string]string{}
	tokens := map[string]string{}
	for _, d := range demo {
		if d.token {
			tokens[d.user] = d.secret
		} else {
			srv.Users[d.user] = d.secret
		}
	}
	srv.AuthMechanisms = map[string]smtptest.AuthMechanism{
		"PLAIN":   smtptest.Plain,
		"LOGIN":   smtptest.Login,
		"XOAUTH2": xoauth2Server(tokens),
	}
	srv.Start()
	return srv
}

// send sends a short message from from to to through tr.
func send(ctx context.Context, out io.Writer, tr transport.Transport, from, to string) error {
	msg := "From: " + from + "\r\nTo: " + to + "\r\nSubject: submission example\r\n\r\nSent through a submission service.\r\n"
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res, err := tr.Send(ctx, envelope.New(from, to), strings.NewReader(msg))
	if res != nil {
		for _, r := range res.Rcpts {
			fmt.Fprintf(out, "  %s: %s\n", r.Addr, r.Outcome)
		}
	}
	return err
}
