// Command mailwire sends mail over SMTP and LMTP from the command line,
// inspects servers, stands in for /usr/sbin/sendmail, and demonstrates the
// library against an embedded server.
//
// Usage:
//
//	mailwire demo                           send through an embedded server in every mode
//	mailwire send [flags] URL [FILE]        send an RFC 5322 message (stdin if no FILE)
//	mailwire send [flags] URL DIR|FILE...   send many messages over one connection
//	mailwire send [flags] --mbox MBOX URL   send every message of an mbox
//	mailwire probe [flags] URL              show what a server offers: TLS, certificates, AUTH, SIZE
//	mailwire sendmail [options] [rcpt...]   sendmail-compatible mode (also when run as "sendmail")
//	mailwire help [COMMAND]
//
// Exit codes follow sysexits.h: 0 success, 64 usage, 65 bad message, 66 no
// input, 67 unknown recipient, 68 unknown host, 69 service unavailable
// (permanent refusal), 74 I/O error, 75 temporary failure, 76 protocol or
// TLS error, 77 permission (authentication) and 78 configuration.
//
// docs/cli.md is the full reference.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
)

// Exit codes from sysexits.h.
const (
	exitOK          = 0
	exitUsage       = 64 // EX_USAGE
	exitDataErr     = 65 // EX_DATAERR
	exitNoInput     = 66 // EX_NOINPUT
	exitNoUser      = 67 // EX_NOUSER
	exitNoHost      = 68 // EX_NOHOST
	exitUnavailable = 69 // EX_UNAVAILABLE
	exitSoftware    = 70 // EX_SOFTWARE
	exitIOErr       = 74 // EX_IOERR
	exitTempFail    = 75 // EX_TEMPFAIL
	exitProtocol    = 76 // EX_PROTOCOL
	exitNoPerm      = 77 // EX_NOPERM
	exitConfig      = 78 // EX_CONFIG
)

// prog is the name the command reports errors under: "mailwire", or
// "sendmail" when it runs under that name.
var prog = "mailwire"

func main() {
	os.Exit(runMain(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// runMain dispatches on the name the program was invoked as.
func runMain(argv []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(argv) > 0 {
		base := strings.TrimSuffix(filepath.Base(argv[0]), ".exe")
		if base == "sendmail" {
			prog = "sendmail"
			return sendmailMain(argv[1:], stdin, stdout, stderr)
		}
		argv = argv[1:]
	}
	return run(argv, stdin, stdout, stderr)
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
	case "probe":
		return probe(args[1:], stdout, stderr)
	case "sendmail":
		return sendmailMain(args[1:], stdin, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version())
		return exitOK
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			switch args[1] {
			case "demo", "send", "probe", "sendmail":
				return run([]string{args[1], "--help"}, stdin, stdout, stderr)
			case "exit", "exit-codes", "status":
				fmt.Fprint(stdout, exitCodesHelp)
				return exitOK
			}
			fmt.Fprintf(stderr, "%s: no help for %q\n", prog, args[1])
			usage(stderr)
			return exitUsage
		}
		usage(stdout)
		return exitOK
	}
	fmt.Fprintf(stderr, "%s: unknown command %q\n", prog, args[0])
	usage(stderr)
	return exitUsage
}

func version() string {
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	return "mailwire " + v
}

func usage(w io.Writer) {
	fmt.Fprint(w, `mailwire sends mail over SMTP and LMTP.

Usage:
  mailwire demo [--quiet]               send through embedded servers in every mode (no network needed)
  mailwire send [flags] URL [FILE]      send an RFC 5322 message from FILE or stdin
  mailwire send [flags] URL DIR|FILE... send many messages over one connection, with progress
  mailwire send [flags] --mbox MBOX URL send every message of an mbox file
  mailwire probe [flags] URL            show a server's greeting, capabilities, TLS, certificates, AUTH, SIZE
  mailwire sendmail [opts] [rcpt...]    sendmail-compatible mode (also when invoked as "sendmail")
  mailwire help COMMAND                 show a command's flags ("mailwire help exit" for exit codes)
  mailwire version

URLs:
  smtp://host[:port]                    STARTTLS required (default port 25)
  smtp://host:port?tls=opportunistic    STARTTLS if offered
  smtp://host:port?tls=none             no TLS
  submission://host[:port]              STARTTLS required, port 587
  smtps://host[:port]                   implicit TLS, port 465
  lmtp:///path/to/socket                LMTP over a Unix socket
  lmtp://host:port[?tls=starttls]       LMTP over TCP

Instead of a URL: --config FILE [--profile NAME], or $MAILWIRE_CONFIG
(with $MAILWIRE_PROFILE), or $MAILWIRE_URL.

The full reference is docs/cli.md.
`)
}

const exitCodesHelp = `Exit status (sysexits.h):
   0  success: every message accepted for every recipient
  64  EX_USAGE        bad command line
  65  EX_DATAERR      bad message or address (header unparsable, no sender or recipient)
  66  EX_NOINPUT      a message file or directory is missing, or has no message
                      (a directory without .eml files, an empty mbox)
  67  EX_NOUSER       a recipient was refused as unknown (enhanced status 5.1.x),
                      and every other permanent refusal too
  68  EX_NOHOST       the server's host name does not resolve
  69  EX_UNAVAILABLE  refused permanently (5xx), or a required extension
                      (STARTTLS, SMTPUTF8, ...) is not offered
  70  EX_SOFTWARE     internal error
  74  EX_IOERR        reading a message failed
  75  EX_TEMPFAIL     temporary failure (4xx, connection failed or lost, timeout,
                      outcome unknown): try again later; a recipient refused
                      permanently (67, 69) outranks others refused temporarily
  76  EX_PROTOCOL     the server broke the protocol, or TLS failed (certificate
                      not verified, handshake failure)
  77  EX_NOPERM       authentication failed, was refused, or is required (530)
  78  EX_CONFIG       configuration error (config file, CA, certificate, password source)
With several messages the worst status wins, in the order
0 < 75 < 65, 66, 67, 69, 74 < 68, 76 < 77 < 64, 78.
`
