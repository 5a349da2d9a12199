package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"os/signal"
	"os/user"
	"strings"
	"syscall"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
)

// Environment variables of the sendmail mode, besides $MAILWIRE_CONFIG,
// $MAILWIRE_PROFILE and $MAILWIRE_URL.
const (
	envUser         = "MAILWIRE_USER"          // as --user
	envAuth         = "MAILWIRE_AUTH"          // as --auth
	envPasswordFile = "MAILWIRE_PASSWORD_FILE" // as --password-file
	envCA           = "MAILWIRE_CA"            // as --ca
	envHelo         = "MAILWIRE_HELO"          // as --helo
	envDomain       = "MAILWIRE_DOMAIN"        // qualifies bare names
)

const sendmailUsage = `Usage:
  sendmail [options] [--] [recipient ...] < message
  mailwire sendmail [options] [--] [recipient ...] < message

A stand-in for /usr/sbin/sendmail: reads one message on standard input, to
its end, and sends it to the recipients given as arguments, or with -t to
those of its To, Cc and Bcc fields (plus any arguments). Bcc fields are
removed. A message without From, Date or Message-ID gets one.

Options:
  -t             take recipients from the header (arguments are added)
  -f ADDR        envelope sender (also -r; -f '<>' for the null sender);
                 default: the message's Sender or From, else $USER@DOMAIN
  -F NAME        full name for the From field added to a message without one
  -i, -oi        accepted; a line with a lone dot never ends the message
  -v             print the protocol transcript to standard error
  -N DSN         DSN NOTIFY for every recipient: never, or a list of
                 success, failure, delay
  -R full|hdrs   DSN RET; -V ENVID  DSN ENVID; -B 7BIT|8BITMIME  BODY type
  -C FILE        mailwire configuration file (as --config)
  --config FILE, --profile NAME
  -oXXX, -O ...  other options are ignored with a warning; -bm, -U, -G,
                 -n, -m, -em and kin are accepted and ignored
  -bs, -bp, -bd, -q ...  not supported: mailwire does not queue

The server: --config/-C, else $MAILWIRE_CONFIG (profile $MAILWIRE_PROFILE),
else the URL in $MAILWIRE_URL, with $MAILWIRE_USER, $MAILWIRE_AUTH,
$MAILWIRE_PASSWORD_FILE, $MAILWIRE_CA and $MAILWIRE_HELO. Bare names
(root) are qualified with $MAILWIRE_DOMAIN, else the host name.

Exit status as sendmail's (sysexits.h): 0 sent; 64 usage; 65 bad message;
67 unknown recipient; 68 host not found; 69 refused; 75 temporary failure;
76 protocol/TLS error; 77 authentication failed; 78 configuration error.`

// sendmailOpts is what the sendmail command line says.
type sendmailOpts struct {
	extract  bool
	from     string
	fromSet  bool
	fullName string
	verbose  bool
	notify   []envelope.DSNNotify
	ret      envelope.DSNReturn
	envID    string
	body     envelope.BodyType
	config   string
	profile  string
	rcpts    []string
	help     bool
}

// sendmailValueOpts take a value, attached ("-fme@x") or as the next
// argument.
const sendmailValueOpts = "fFrNRVBCXhLoObqA"

// parseSendmailArgs parses sendmail's getopt-style command line: options
// may be clustered ("-ti"), and "--" ends them.
func parseSendmailArgs(args []string, warn func(string, ...any)) (*sendmailOpts, error) {
	o := &sendmailOpts{}
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			break
		}
		if strings.HasPrefix(a, "--") {
			name, val, hasVal := strings.Cut(a[2:], "=")
			switch name {
			case "help":
				o.help = true
				continue
			case "config", "profile":
				if !hasVal {
					if i+1 >= len(args) {
						return nil, failf(exitUsage, "--%s needs a value", name)
					}
					i++
					val = args[i]
				}
				if name == "config" {
					o.config = val
				} else {
					o.profile = val
				}
				continue
			}
			return nil, failf(exitUsage, "unknown option %s", a)
		}
		cluster := a[1:]
		for j := 0; j < len(cluster); j++ {
			c := cluster[j]
			if strings.IndexByte(sendmailValueOpts, c) < 0 {
				switch c {
				case 't':
					o.extract = true
				case 'i':
				case 'v':
					o.verbose = true
				case 'U', 'G', 'n', 'm':
					// initial submission, gateway, no aliasing, me too: no
					// meaning for a client
				default:
					return nil, failf(exitUsage, "unknown option -%c", c)
				}
				continue
			}
			val := cluster[j+1:]
			if val == "" && c != 'b' && c != 'q' {
				if i+1 >= len(args) {
					return nil, failf(exitUsage, "option -%c needs a value", c)
				}
				i++
				val = args[i]
			}
			if err := o.setValue(c, val, warn); err != nil {
				return nil, err
			}
			break
		}
	}
	for _, a := range args[i:] {
		for _, r := range strings.Split(a, ",") {
			r = strings.TrimSpace(r)
			if strings.HasPrefix(r, "<") && strings.HasSuffix(r, ">") {
				r = r[1 : len(r)-1]
			}
			if r != "" {
				o.rcpts = append(o.rcpts, r)
			}
		}
	}
	return o, nil
}

func (o *sendmailOpts) setValue(c byte, val string, warn func(string, ...any)) error {
	switch c {
	case 'f', 'r':
		v := strings.TrimSpace(val)
		if strings.HasPrefix(v, "<") && strings.HasSuffix(v, ">") {
			v = v[1 : len(v)-1]
		}
		o.from, o.fromSet = v, true
	case 'F':
		o.fullName = val
	case 'N':
		for _, n := range strings.Split(val, ",") {
			var d envelope.DSNNotify
			if err := d.UnmarshalText([]byte(strings.TrimSpace(n))); err != nil {
				return failf(exitUsage, "-N %s: want never, or success, failure and delay", val)
			}
			o.notify = append(o.notify, d)
		}
	case 'R':
		if err := o.ret.UnmarshalText([]byte(val)); err != nil {
			return failf(exitUsage, "-R %s: want full or hdrs", val)
		}
	case 'V':
		o.envID = val
	case 'B':
		if err := o.body.UnmarshalText([]byte(val)); err != nil {
			return failf(exitUsage, "-B %s: want 7BIT or 8BITMIME", val)
		}
	case 'C':
		o.config = val
	case 'o':
		switch {
		case val == "i":
		case len(val) == 2 && (val[0] == 'e' || val[0] == 'd'):
			// error and delivery modes (-oem, -odb ...): nothing to do
		case val == "m":
		default:
			warn("ignoring option -o%s", val)
		}
	case 'O':
		warn("ignoring option -O %s", val)
	case 'b':
		switch val {
		case "m", "":
		default:
			return failf(exitUsage, "-b%s is not supported: mailwire only sends (-bm)", val)
		}
	case 'q':
		return failf(exitUsage, "-q%s is not supported: mailwire has no queue", val)
	case 'h', 'L', 'X', 'A':
		// hop count, syslog label, traffic log, -Ac/-Am: nothing to do
	}
	return nil
}

// sendmailMain runs the sendmail-compatible mode.
func sendmailMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	warn := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s: warning: %s\n", prog, fmt.Sprintf(format, a...))
	}
	so, err := parseSendmailArgs(args, warn)
	if err != nil {
		return reportSetup(stderr, err)
	}
	if so.help {
		fmt.Fprintln(stdout, sendmailUsage)
		return exitOK
	}
	if !so.extract && len(so.rcpts) == 0 {
		return sendmailUsageError(stderr, "no recipients: give them as arguments, or use -t")
	}
	domain := localDomain()
	qualify := func(a string) string {
		if a != "" && !strings.Contains(a, "@") {
			return a + "@" + domain
		}
		return a
	}
	for i, r := range so.rcpts {
		so.rcpts[i] = qualify(r)
	}
	spec := envSpec{fallbackFrom: qualify(loginName()), hasFallback: true}
	if so.fromSet {
		spec.from, spec.fromSet = qualify(so.from), true
	}
	if so.extract {
		spec.addTo = so.rcpts
	} else {
		spec.to = so.rcpts
	}

	o := connOptions{
		stderr:     stderr,
		configFile: so.config,
		profile:    so.profile,
		debug:      so.verbose,
		timeout:    5 * time.Minute,
		noPrompt:   true,
	}
	if so.config == "" && os.Getenv(envConfig) == "" && os.Getenv(envURL) == "" {
		// resolveTarget's message would offer a URL, which this mode does
		// not take.
		return sendmailUsageError(stderr, fmt.Sprintf("no server: set $%s (a configuration file, with $%s for its profile) or $%s (a server URL), or give -C FILE",
			envConfig, envProfile, envURL))
	}
	if so.config == "" && os.Getenv(envConfig) == "" {
		// $MAILWIRE_URL: the rest of the settings from the environment.
		o.user, o.mech = os.Getenv(envUser), os.Getenv(envAuth)
		o.passwordFile, o.caFile, o.helo = os.Getenv(envPasswordFile), os.Getenv(envCA), os.Getenv(envHelo)
	}
	tgt, err := o.resolveTarget("")
	if err != nil {
		return reportSetup(stderr, err)
	}

	m, err := prepareMessage(stdin, spec)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", prog, oneLine(err.Error()))
		if so.extract && len(so.rcpts) == 0 && isNoRecipients(err) {
			return exitUsage
		}
		return exitCode(nil, err)
	}
	env := m.env
	if so.notify != nil {
		for i := range env.To {
			env.To[i].Notify = so.notify
		}
	}
	if so.ret != "" {
		env.Return = so.ret
	}
	if so.envID != "" {
		env.EnvID = so.envID
	}
	if so.body != "" {
		env.Body = so.body
	}
	body := m.body
	if m.header != nil {
		if add := missingHeaders(m.header, env.From, so.fullName, domain); add != "" {
			body = io.MultiReader(strings.NewReader(add), body)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	res, err := tgt.tr.Send(ctx, env, body)
	transport.CloseIdleConnections(tgt.tr)
	out := io.Discard // sendmail is silent on success
	if so.verbose {
		out = stdout
	}
	return reportOne(tgt, res, err, out, stderr)
}

// sendmailUsageError prints a usage error of the sendmail mode, which
// takes no "help" command, and returns EX_USAGE.
func sendmailUsageError(stderr io.Writer, msg string) int {
	see := "sendmail --help"
	if prog != "sendmail" {
		see = prog + " sendmail --help"
	}
	fmt.Fprintf(stderr, "%s: %s (see %s)\n", prog, msg, see)
	return exitUsage
}

func isNoRecipients(err error) bool { return errors.Is(err, envelope.ErrNoRecipients) }

// missingHeaders returns the From, Date and Message-ID fields a message
// without them needs (RFC 5322 requires From and Date), as a local
// sendmail adds them.
func missingHeaders(header []byte, from, fullName, domain string) string {
	var b strings.Builder
	if !hasField(header, "From") && from != "" {
		fmt.Fprintf(&b, "From: %s\r\n", (&mail.Address{Name: fullName, Address: from}).String())
	}
	if !hasField(header, "Date") {
		fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	}
	if !hasField(header, "Message-ID") {
		var r [12]byte
		rand.Read(r[:])
		host := domain
		if i := strings.LastIndexByte(from, '@'); i >= 0 && !strings.ContainsAny(from[i+1:], "[]") {
			host = from[i+1:]
		}
		fmt.Fprintf(&b, "Message-ID: <%s.%s@%s>\r\n", time.Now().UTC().Format("20060102150405"), hex.EncodeToString(r[:]), host)
	}
	return b.String()
}

// localDomain qualifies bare names: $MAILWIRE_DOMAIN, else the host name.
func localDomain() string {
	if d := os.Getenv(envDomain); d != "" {
		return d
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

// loginName is the user running the command.
func loginName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	for _, v := range []string{"LOGNAME", "USER"} {
		if s := os.Getenv(v); s != "" {
			return s
		}
	}
	return "nobody"
}
