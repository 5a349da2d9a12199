// Command mailwire sends mail over SMTP and LMTP from the command line, and
// demonstrates the library against an embedded server.
//
// Usage:
//
//	mailwire demo                          send through an embedded server in every mode
//	mailwire send [flags] URL [FILE]       send an RFC 5322 message (stdin if no FILE)
//	mailwire help [COMMAND]
//
// Exit codes follow sysexits.h: 0 success, 64 usage, 65 bad message, 66 no
// input, 69 service unavailable (permanent refusal), 75 temporary failure,
// 76 protocol error, 77 permission (authentication) and 78 configuration.
package main

import (
	"fmt"
	"io"
	"os"
)

// Exit codes from sysexits.h.
const (
	exitOK          = 0
	exitUsage       = 64 // EX_USAGE
	exitDataErr     = 65 // EX_DATAERR
	exitNoInput     = 66 // EX_NOINPUT
	exitUnavailable = 69 // EX_UNAVAILABLE
	exitSoftware    = 70 // EX_SOFTWARE
	exitTempFail    = 75 // EX_TEMPFAIL
	exitProtocol    = 76 // EX_PROTOCOL
	exitNoPerm      = 77 // EX_NOPERM
	exitConfig      = 78 // EX_CONFIG
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "demo":
		return demo(args[1:], stdout, stderr)
	case "send":
		return send(args[1:], stdin, stdout, stderr)
	case "help", "-h", "--help":
		if len(args) > 1 {
			return run([]string{args[1], "--help"}, stdin, stdout, stderr)
		}
		usage(stdout)
		return exitOK
	}
	fmt.Fprintf(stderr, "mailwire: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `mailwire sends mail over SMTP and LMTP.

Usage:
  mailwire demo                       send through an embedded server in every security mode (no network needed)
  mailwire send [flags] URL [FILE]    send an RFC 5322 message from FILE or stdin
  mailwire help COMMAND               show a command's flags

URLs:
  smtp://host[:port]                  STARTTLS required (default port 25)
  smtp://host:port?tls=opportunistic  STARTTLS if offered
  smtp://host:port?tls=none           no TLS
  submission://host[:port]            STARTTLS required, port 587
  smtps://host[:port]                 implicit TLS, port 465
  lmtp:///path/to/socket              LMTP over a Unix socket
  lmtp://host:port                    LMTP over TCP
`)
}
