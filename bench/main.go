// Command bench compares mailwire's SMTP client with its peers: emersion's
// go-smtp client, net/smtp, wneessen/go-mail, Python's smtplib and Postfix's
// smtp-source, against the same servers (Postfix's smtp-sink, and go-smtp's
// server for CHUNKING), interleaved in one run. See README.md.
//
//	cd bench && ./run.sh            # full run (about 7 minutes), updates docs/performance.md
//	cd bench && ./run.sh -quick     # smoke run (under 2 minutes)
//
// Subcommands (the harness re-executes itself for each client run and for the
// go-smtp server, so that each has its own process and rusage):
//
//	bench run [flags]      the benchmark (the default)
//	bench client [flags]   one client run; prints JSON
//	bench server [flags]   a discarding go-smtp server
package main

import (
	"fmt"
	"os"
)

func main() {
	args := os.Args[1:]
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		os.Exit(runMain(args))
	case "client":
		clientMain(args)
	case "server":
		serverMain(args)
	default:
		fmt.Fprintf(os.Stderr, "bench: unknown subcommand %q (run, client, server)\n", cmd)
		os.Exit(2)
	}
}
