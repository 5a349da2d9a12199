package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/mailwire/mailwire/transport"
)

const sendUsage = `Usage:
  mailwire send [flags] URL [FILE]            send one message (stdin if no FILE, or FILE is -)
  mailwire send [flags] URL DIR|FILE...       send every *.eml file of DIR, or each FILE
  mailwire send [flags] --mbox MBOX URL       send every message of an mbox file
  mailwire send [flags] --config CFG [--profile NAME] [FILE|DIR...]

Sends RFC 5322 messages. The envelope comes from the header as Python's
smtplib send_message takes it (Sender, else From; To, Cc and Bcc; one
Resent- block overrides them) unless --from or --to give it; Bcc fields are
never transmitted. Several messages go over one connection, with a progress
bar when stderr is a terminal, one line per message and a summary.

The server is the URL, the --config profile, or else $MAILWIRE_CONFIG
(with $MAILWIRE_PROFILE) or $MAILWIRE_URL:
  smtp://host[:port]                  STARTTLS required (port 25)
  smtp://host:port?tls=opportunistic  STARTTLS if offered
  smtp://host:port?tls=none           no TLS
  submission://host[:port]            STARTTLS required, port 587
  smtps://host[:port]                 implicit TLS, port 465
  lmtp:///path/to/socket              LMTP over a Unix socket
  lmtp://host:port[?tls=starttls]     LMTP over TCP

Passwords never go on the command line: use --password-file or
--password-env, or type it when asked on a terminal.

Exit status (sysexits.h): 0 sent to every recipient; 64 usage; 65 bad
message or address; 66 input missing; 67 a recipient does not exist (5.1.x);
68 host not found; 69 refused permanently or TLS/extension unavailable;
74 reading input failed; 75 temporary failure (retry later); 76 protocol or
TLS error; 77 authentication failed; 78 configuration error. With several
messages, the worst one decides.

Flags:`

// sendOptions are the flags of send.
type sendOptions struct {
	connOptions
	from       string
	to         stringList
	mbox       string
	quiet      bool
	noProgress bool
}

func send(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	var o sendOptions
	o.stderr = stderr
	fs.StringVar(&o.from, "from", "", "envelope sender `ADDR` (default: the header's Sender or From); --from '' sends the null sender <>")
	fs.Var(&o.to, "to", "envelope recipient `ADDR`; repeatable (default: the header's To, Cc and Bcc)")
	fs.StringVar(&o.mbox, "mbox", "", "send every message of the mbox `FILE` (- for stdin)")
	fs.BoolVar(&o.quiet, "quiet", false, "with several messages, print only failures and the summary")
	fs.BoolVar(&o.noProgress, "no-progress", false, "never draw the progress bar")
	o.register(fs, true)
	pos, code, ok := parseCommand(fs, args, sendUsage, stdout, stderr)
	if !ok {
		return code
	}
	o.noteSet(fs)
	rawURL := ""
	if len(pos) > 0 && isURL(pos[0]) {
		rawURL, pos = pos[0], pos[1:]
	}
	spec := envSpec{to: o.to}
	if o.set["from"] {
		spec.from, spec.fromSet = o.from, true
	}

	// What to send: one message, or a batch.
	var src msgSource
	var err error
	switch {
	case o.mbox != "" && len(pos) > 0:
		return usageError(stderr, "--mbox takes no FILE arguments")
	case o.mbox != "":
		if src, err = openMbox(o.mbox, stdin); err != nil {
			return reportSetup(stderr, err)
		}
	case len(pos) == 0, len(pos) == 1 && pos[0] == "-":
		src = nil // one message from stdin
	case len(pos) == 1 && !isDir(pos[0]):
		src = nil
	default:
		if src, err = fileSource(pos); err != nil {
			return reportSetup(stderr, err)
		}
	}
	if src != nil {
		defer src.Close()
	}

	tgt, err := o.resolveTarget(rawURL)
	if err != nil {
		return reportSetup(stderr, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if src != nil {
		b := &batch{
			tgt: tgt, spec: spec, src: src, timeout: o.timeout,
			stdout: stdout, stderr: stderr, quiet: o.quiet,
			progress: !o.noProgress && !o.debug && isTerminal(stderr),
		}
		return b.run(ctx)
	}

	in := stdin
	name := "stdin"
	var size int64
	var reopen opener // standard input cannot be read twice
	if len(pos) == 1 && pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", prog, err)
			return exitNoInput
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
			reopen = fileOpener(pos[0], fi)
		}
		in, name = f, pos[0]
	}
	if name == "stdin" {
		if f, ok := stdin.(*os.File); ok && isTerminal(f) {
			fmt.Fprintf(stderr, "%s: reading the message from the terminal; end it with Ctrl-D\n", prog)
		}
	}
	m, err := prepareMessage(in, spec)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s: %s\n", prog, name, oneLine(err.Error()))
		return exitCode(nil, err)
	}
	m.env.Size = size
	sctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	res, err := tgt.tr.Send(sctx, m.env, reopenable(m.body, reopen, spec))
	transport.CloseIdleConnections(tgt.tr) // QUIT now, not at exit
	return reportOne(tgt, res, err, stdout, stderr)
}

// usageError prints a usage error and returns EX_USAGE.
func usageError(stderr io.Writer, msg string) int {
	fmt.Fprintf(stderr, "%s: %s (see %s help)\n", prog, msg, prog)
	return exitUsage
}

// reportSetup prints an error from the command's set-up and returns its
// status.
func reportSetup(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "%s: %s\n", prog, oneLine(err.Error()))
	return statusOf(err)
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// reportOne prints the outcome of one send: a summary on stdout when the
// message went to at least one recipient, one line on stderr per refused
// recipient, or one line on stderr when nothing was sent. It returns the
// exit status.
func reportOne(tgt *target, res *transport.Result, err error, stdout, stderr io.Writer) int {
	accepted := res.Count(transport.Accepted)
	if accepted > 0 {
		fmt.Fprintln(stdout, acceptedSummary(res))
	}
	if err == nil {
		return exitOK
	}
	if accepted > 0 {
		for _, rr := range res.Rcpts {
			if rr.Outcome != transport.Accepted {
				fmt.Fprintf(stderr, "%s: refused %s\n", prog, describeRcpt(rr))
			}
		}
	} else {
		fmt.Fprintf(stderr, "%s: not sent: %s\n", prog, oneLine(err.Error()))
	}
	if outcomeUnknown(res, err) {
		fmt.Fprintf(stderr, "%s: warning: %s\n", prog, unknownWarning)
	}
	return exitCode(res, err)
}

// acceptedSummary is "sent: 2/3 recipients accepted, queue id X (250 ...)".
func acceptedSummary(res *transport.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "sent: %d/%d recipients accepted", res.Count(transport.Accepted), len(res.Rcpts))
	reply := res.Reply
	if reply == nil {
		// LMTP: each recipient has its own reply; show the first.
		for _, rr := range res.Rcpts {
			if rr.Outcome == transport.Accepted && rr.Reply != nil {
				reply = rr.Reply
				break
			}
		}
	}
	if reply != nil {
		if id := queueID(reply.Text); id != "" {
			fmt.Fprintf(&b, ", queue id %s", id)
		}
		fmt.Fprintf(&b, " (%s)", oneLine(reply.String()))
	}
	return b.String()
}

// fileSource lists the messages named by args: files, and the *.eml files
// of directories (sorted by name, not recursive).
func fileSource(args []string) (msgSource, error) {
	var files []string
	for _, a := range args {
		if a == "-" {
			return nil, failf(exitUsage, "- (stdin) cannot be mixed with other messages")
		}
		fi, err := os.Stat(a)
		if err != nil {
			return nil, failf(exitNoInput, "%v", err)
		}
		if !fi.IsDir() {
			files = append(files, a)
			continue
		}
		entries, err := os.ReadDir(a)
		if err != nil {
			return nil, failf(exitNoInput, "%v", err)
		}
		var names []string
		for _, e := range entries {
			if !e.IsDir() && strings.EqualFold(filepath.Ext(e.Name()), ".eml") {
				names = append(names, filepath.Join(a, e.Name()))
			}
		}
		if len(names) == 0 {
			return nil, failf(exitNoInput, "%s: no .eml files", a)
		}
		sort.Strings(names)
		files = append(files, names...)
	}
	return &filesSource{files: files}, nil
}

// filesSource yields one message per file.
type filesSource struct {
	files []string
	next  int
	cur   *os.File
}

func (s *filesSource) Total() int { return len(s.files) }

func (s *filesSource) Next() (*sourceMsg, error) {
	s.closeCur()
	if s.next >= len(s.files) {
		return nil, io.EOF
	}
	name := s.files[s.next]
	s.next++
	f, err := os.Open(name)
	if err != nil {
		return &sourceMsg{name: name, err: failf(exitNoInput, "%v", err)}, nil
	}
	s.cur = f
	m := &sourceMsg{name: name, r: f}
	if fi, err := f.Stat(); err == nil {
		m.size = fi.Size()
		m.reopen = fileOpener(name, fi)
	}
	return m, nil
}

func (s *filesSource) closeCur() {
	if s.cur != nil {
		s.cur.Close()
		s.cur = nil
	}
}

func (s *filesSource) Close() error { s.closeCur(); return nil }
