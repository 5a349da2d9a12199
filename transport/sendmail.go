package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailwire/mailwire/envelope"
)

// DefaultSendmailPath is where Debian, Fedora, the BSDs and macOS install
// the sendmail command, whichever mail system provides it.
const DefaultSendmailPath = "/usr/sbin/sendmail"

// sendmailWaitDelay bounds how long Send waits, once the program has exited
// or ctx is done, for processes it left behind that still hold its standard
// error open; the program itself is killed as soon as ctx is done.
const sendmailWaitDelay = 2 * time.Second

// maxStderr is how much of the end of the program's standard error an
// [ExitError] keeps.
const maxStderr = 4 << 10

// ErrDashAddress is the Err of the *envelope.Error, inside an *[OpError] at
// [OpEnvelope], with which [Sendmail] refuses a sender or recipient that
// starts with "-": a sendmail program could take it for an option.
var ErrDashAddress = errors.New(`starts with "-", which a sendmail program could take for an option`)

// Sendmail is a Transport that hands the message to a local
// sendmail-compatible program: the sendmail command of Postfix, Sendmail or
// Exim, or a relay-only client such as msmtp or nullmailer. Each Send runs
//
//	Path Args... -i -f sender -- recipient...
//
// and writes the message to the program's standard input. -i stops a line
// holding a single dot from ending the message, and "--" ends the options,
// so no recipient can be read as one. The null reverse-path is passed as
// "-f <>": Postfix's sendmail reads the value of -f as an address in a
// header, so "<>" is the empty address, and Sendmail and Exim document
// "<>" for it too.
//
// Send validates the envelope with [envelope.Envelope.Validate] (which
// refuses control characters) and refuses, before starting anything, a
// sender or recipient that starts with "-" ([ErrDashAddress]), so that no
// address can inject an option even into a program that ignores "--". It
// also refuses what the command line cannot carry: REQUIRETLS, DSN
// parameters (RET, ENVID, NOTIFY, ORCPT; the programs spell their options
// differently) and BODY=BINARYMIME (line endings are converted); each is a
// *[NotSupportedError] at [OpEnvelope]. SIZE, BODY=8BITMIME and SMTPUTF8
// need nothing from the program and are not passed.
//
// The message streams to the program: Send never holds more than a buffer
// of it. Line endings are converted from CRLF to LF on the way, since a
// sendmail program reads local text files, whose lines end in LF (Postfix
// removes the CRs itself, other programs keep them and send CR CR LF); a
// CR not followed by LF is passed unchanged.
//
// The program's exit status is the answer, read as sysexits.h defines it:
//
//   - 0: the message was accepted for every recipient;
//   - EX_TEMPFAIL (75), EX_OSERR (71) and EX_IOERR (74): every recipient is
//     TempFailed and the error matches [ErrTransient] (Sendmail itself
//     answers these statuses with 4yz replies);
//   - any other status, such as EX_USAGE (64), EX_DATAERR (65), EX_NOUSER
//     (67), EX_NOHOST (68), EX_UNAVAILABLE (69), EX_SOFTWARE (70), EX_NOPERM
//     (77) or EX_CONFIG (78): every recipient is PermFailed and the error
//     matches [ErrPermanent].
//
// The error is then an *[OpError] wrapping an *[ExitError] that carries the
// status and the end of the program's standard error. The status is for
// the whole submission: a program that delivers synchronously to several
// recipients may have delivered to some of them before failing.
//
// A program killed by a signal it did not get from Send, or that exited
// with status 0 before reading the whole message, may or may not have queued
// it: every recipient is Unknown and the error matches [ErrUnknownOutcome].
//
// ctx bounds the whole run. When it is done, Send kills the program, closes
// its standard input, waits for it and returns context.Cause(ctx) in an
// *[OpError]. If the whole message had not been written, the program never
// saw its end and cannot have queued it: every recipient is TempFailed at
// [OpData] and the error matches no class, like any caller's context error.
// If it had, the program may have queued it just before being killed: every
// recipient is Unknown at [OpEndOfData] and the error matches
// [ErrUnknownOutcome]. A message that cannot be read ends the same way as
// before its end: the program is killed before it sees the end of its input,
// and the error wraps a *[MessageError].
//
// A program that cannot be started (missing, not executable) is an
// *[OpError] at [OpDial] matching [ErrPermanent]; a missing one also matches
// exec.ErrNotFound and fs.ErrNotExist.
//
// The Result has one RcptResult per recipient with Attempts 1; Reply is
// always nil, since the program answers only with its status.
//
// The zero value runs [DefaultSendmailPath]. A Sendmail is safe for
// concurrent use by multiple goroutines; each Send runs its own process. Do
// not modify its fields after the first Send.
type Sendmail struct {
	// Path is the program to run. "" means [DefaultSendmailPath]; a name
	// without a slash is looked up in PATH.
	Path string
	// Args are arguments put before Send's own, such as "-C",
	// "/etc/postfix-out" to choose a Postfix instance. They are passed
	// unchanged: they must come from configuration, never from a message.
	Args []string
	// Env is the program's environment, each entry "key=value". nil means
	// the environment of the current process.
	Env []string
}

var _ Transport = (*Sendmail)(nil)

func (s *Sendmail) path() string {
	if s.Path == "" {
		return DefaultSendmailPath
	}
	return s.Path
}

// args returns the program's arguments for env.
func (s *Sendmail) args(env *envelope.Envelope) []string {
	from := env.From
	if from == "" {
		from = "<>"
	}
	args := make([]string, 0, len(s.Args)+4+len(env.To))
	args = append(args, s.Args...)
	args = append(args, "-i", "-f", from, "--")
	for _, r := range env.To {
		args = append(args, r.Addr)
	}
	return args
}

// Send runs the program for env and writes msg to it. See [Sendmail] and
// [Transport].
func (s *Sendmail) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*Result, error) {
	path := s.path()
	opErr := func(op Op, err error) *OpError { return &OpError{Op: op, Addr: path, Err: err} }
	if env == nil {
		return nil, opErr(OpEnvelope, &envelope.Error{Field: "envelope", Err: envelope.ErrNoRecipients})
	}
	res := newResult(env)
	if err := checkSendmailEnvelope(env); err != nil {
		setAll(res, PermFailed, err)
		return res, opErr(OpEnvelope, err)
	}
	if ctx.Err() != nil {
		oe := opErr(OpDial, context.Cause(ctx))
		setAll(res, TempFailed, oe)
		return res, oe
	}

	cmd := exec.CommandContext(ctx, path, s.args(env)...)
	cmd.Env = s.Env
	stderr := &tailBuffer{}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		oe := opErr(OpDial, err)
		setAll(res, TempFailed, oe)
		return res, oe
	}
	// Kill first, then close: the program must not see the end of its
	// input, or it could queue a message cut short.
	cmd.Cancel = func() error {
		err := cmd.Process.Kill()
		stdin.Close()
		return err
	}
	cmd.WaitDelay = sendmailWaitDelay
	if err := cmd.Start(); err != nil {
		if ctx.Err() != nil {
			oe := opErr(OpDial, context.Cause(ctx))
			setAll(res, TempFailed, oe)
			return res, oe
		}
		oe := opErr(OpDial, &startError{err: err})
		setAll(res, PermFailed, oe)
		return res, oe
	}

	rerr, werr := copyLF(stdin, msg)
	if rerr != nil {
		cmd.Process.Kill()
	}
	cerr := stdin.Close()
	// sent: the whole message was written and the program may see its end.
	sent := rerr == nil && werr == nil && cerr == nil
	waitErr := cmd.Wait() // the status is read from ProcessState

	ps := cmd.ProcessState
	if ps == nil { // the process could not be waited for
		if sent {
			oe := opErr(OpEndOfData, waitErr)
			setAll(res, Unknown, oe)
			return res, oe
		}
		setAll(res, TempFailed, waitErr)
		return res, opErr(OpData, waitErr)
	}
	exited := ps.Exited()
	code := -1
	if exited {
		code = ps.ExitCode()
	}
	switch {
	case exited && code == 0 && sent:
		setAll(res, Accepted, nil)
		return res, nil
	case exited && code != 0:
		ee := &ExitError{Code: code, Stderr: stderr.String()}
		op := OpData
		if sent {
			op = OpEndOfData
		}
		o := PermFailed
		if errors.Is(ee, ErrTransient) {
			o = TempFailed
		}
		setAll(res, o, ee)
		return res, opErr(op, ee)
	case ctx.Err() != nil && !exited:
		if sent {
			oe := opErr(OpEndOfData, context.Cause(ctx))
			setAll(res, Unknown, oe)
			return res, oe
		}
		setAll(res, TempFailed, context.Cause(ctx))
		return res, opErr(OpData, context.Cause(ctx))
	case rerr != nil && !exited:
		me := &MessageError{Err: rerr}
		setAll(res, TempFailed, me)
		return res, opErr(OpData, me)
	}
	// Killed by someone else, or a success before the end of the message.
	ee := &ExitError{Code: code, Signal: signalName(ps), Stderr: stderr.String()}
	oe := opErr(OpEndOfData, ee)
	setAll(res, Unknown, oe)
	return res, oe
}

// checkSendmailEnvelope reports what in env a sendmail command line cannot
// carry safely.
func checkSendmailEnvelope(env *envelope.Envelope) error {
	if err := env.Validate(); err != nil {
		return err
	}
	if strings.HasPrefix(env.From, "-") {
		return &envelope.Error{Field: "from", Err: ErrDashAddress}
	}
	dsn := env.Return != "" || env.EnvID != ""
	for i, r := range env.To {
		if strings.HasPrefix(r.Addr, "-") {
			return &envelope.Error{Field: "to[" + strconv.Itoa(i) + "]", Err: ErrDashAddress}
		}
		if len(r.Notify) > 0 || r.ORcpt != "" {
			dsn = true
		}
	}
	switch {
	case env.RequireTLS:
		return &NotSupportedError{Extension: "REQUIRETLS", Detail: "a sendmail program cannot be asked to require TLS"}
	case dsn:
		return &NotSupportedError{Extension: "DSN", Detail: "sendmail programs take DSN options in different forms"}
	case env.Body == envelope.BodyBinaryMIME:
		return &NotSupportedError{Extension: "BINARYMIME", Detail: "line endings are converted for a sendmail program"}
	}
	return nil
}

// copyLF copies msg to w, converting CRLF to LF. It returns the error of
// reading msg or of writing to w, whichever stopped it.
func copyLF(w io.Writer, msg io.Reader) (rerr, werr error) {
	lw := &lfWriter{w: w}
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	for {
		n, err := msg.Read(buf)
		if n > 0 {
			if _, werr := lw.Write(buf[:n]); werr != nil {
				return nil, werr
			}
		}
		if err == io.EOF {
			return nil, lw.flush()
		}
		if err != nil {
			return err, nil
		}
	}
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// lfWriter converts CRLF line endings to LF on the way to w and passes a
// CR not followed by LF unchanged. A CR that ends a Write is held until the
// next byte shows what it is; flush writes it if the input ends with it.
type lfWriter struct {
	w   io.Writer
	cr  bool   // a CR is held back
	out []byte // scratch, at most one Write's worth
}

func (l *lfWriter) Write(p []byte) (int, error) {
	out := l.out[:0]
	q := p
	if l.cr && len(q) > 0 {
		l.cr = false
		if q[0] != '\n' {
			out = append(out, '\r')
		}
	}
	for len(q) > 0 {
		i := bytes.IndexByte(q, '\r')
		if i < 0 {
			out = append(out, q...)
			break
		}
		out = append(out, q[:i]...)
		if i+1 == len(q) {
			l.cr = true
			break
		}
		if q[i+1] != '\n' {
			out = append(out, '\r')
		}
		q = q[i+1:]
	}
	l.out = out
	if len(out) > 0 {
		if _, err := l.w.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (l *lfWriter) flush() error {
	if !l.cr {
		return nil
	}
	l.cr = false
	_, err := l.w.Write([]byte{'\r'})
	return err
}

// ExitError reports that a [Sendmail] program did not accept the message:
// it exited with a non-zero status, was killed by a signal, or exited with
// status 0 before reading the whole message.
type ExitError struct {
	// Code is the exit status, as sysexits.h defines it for mail programs;
	// -1 if the program was killed by a signal.
	Code int
	// Signal names the signal that killed the program, such as "killed";
	// "" if it exited.
	Signal string
	// Stderr is the end of what the program wrote to its standard error,
	// at most 4 KiB, with lines joined by " | " and control characters
	// replaced by spaces. It is for people to read, not for parsing.
	Stderr string
}

// Error returns "exit status 75 (EX_TEMPFAIL): " followed by Stderr, or
// "signal: killed: ..." for a program killed by a signal.
func (e *ExitError) Error() string {
	var b strings.Builder
	if e.Code < 0 {
		b.WriteString("signal: ")
		if e.Signal != "" {
			b.WriteString(e.Signal)
		} else {
			b.WriteString("unknown")
		}
	} else {
		b.WriteString("exit status ")
		b.WriteString(strconv.Itoa(e.Code))
		if e.Code >= exBase && e.Code-exBase < len(sysexitsNames) {
			b.WriteString(" (")
			b.WriteString(sysexitsNames[e.Code-exBase])
			b.WriteByte(')')
		}
		if e.Code == 0 {
			b.WriteString(" before reading the whole message")
		}
	}
	if e.Stderr != "" {
		b.WriteString(": ")
		b.WriteString(e.Stderr)
	}
	return b.String()
}

// Is classifies the error by its status: EX_TEMPFAIL (75), EX_OSERR (71)
// and EX_IOERR (74) match [ErrTransient], any other non-zero status
// [ErrPermanent]. A program killed by a signal (Code -1) or one that exited
// with status 0 before reading the whole message matches
// [ErrUnknownOutcome]: it may have queued the message.
func (e *ExitError) Is(target error) bool {
	switch target {
	case ErrTransient:
		return e.Code == exTempFail || e.Code == exOSErr || e.Code == exIOErr
	case ErrPermanent:
		return e.Code > 0 && e.Code != exTempFail && e.Code != exOSErr && e.Code != exIOErr
	case ErrUnknownOutcome:
		return e.Code <= 0
	}
	return false
}

// sysexits.h
const (
	exBase     = 64
	exOSErr    = 71
	exIOErr    = 74
	exTempFail = 75
)

var sysexitsNames = [...]string{
	"EX_USAGE", "EX_DATAERR", "EX_NOINPUT", "EX_NOUSER", "EX_NOHOST",
	"EX_UNAVAILABLE", "EX_SOFTWARE", "EX_OSERR", "EX_OSFILE", "EX_CANTCREAT",
	"EX_IOERR", "EX_TEMPFAIL", "EX_PROTOCOL", "EX_NOPERM", "EX_CONFIG",
}

// signalName returns the name of the signal that ended the process, such
// as "killed", or "".
func signalName(ps *os.ProcessState) string {
	if ps == nil || ps.Exited() {
		return ""
	}
	name, _ := strings.CutPrefix(ps.String(), "signal: ")
	return name
}

// startError is why a sendmail program could not be started. It matches
// ErrPermanent, exec.ErrNotFound and fs.ErrNotExist when the program does
// not exist, and fs.ErrPermission when it may not be run. It unwraps to
// those sentinels only, not to the system error: an errno implements
// net.Error, and an *OpError would take it for a network failure.
type startError struct {
	err error
}

func (e *startError) Error() string { return e.err.Error() }

func (e *startError) Unwrap() []error {
	var kinds []error
	if errors.Is(e.err, exec.ErrNotFound) || errors.Is(e.err, fs.ErrNotExist) {
		kinds = append(kinds, exec.ErrNotFound, fs.ErrNotExist)
	}
	if errors.Is(e.err, fs.ErrPermission) {
		kinds = append(kinds, fs.ErrPermission)
	}
	if errors.Is(e.err, exec.ErrDot) {
		kinds = append(kinds, exec.ErrDot)
	}
	return kinds
}

func (e *startError) Is(target error) bool { return target == ErrPermanent }

// tailBuffer keeps the last maxStderr bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	cut bool // bytes were dropped from the start
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if len(p) >= maxStderr {
		b.cut = b.cut || len(b.buf) > 0 || len(p) > maxStderr
		b.buf = append(b.buf[:0], p[len(p)-maxStderr:]...)
		return n, nil
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) > 2*maxStderr {
		drop := len(b.buf) - maxStderr
		b.buf = b.buf[:copy(b.buf, b.buf[drop:])]
		b.cut = true
	}
	return n, nil
}

// String returns the kept bytes as one line of text: valid UTF-8, lines
// joined by " | ", control characters (C0, DEL, C1, line and paragraph
// separators and bidirectional controls) replaced by spaces, runs of spaces
// collapsed; "..." first if the start was dropped.
func (b *tailBuffer) String() string {
	b.mu.Lock()
	data, cut := b.buf, b.cut
	if len(data) > maxStderr {
		data, cut = data[len(data)-maxStderr:], true
	}
	s := strings.ToValidUTF8(string(data), "\uFFFD")
	b.mu.Unlock()

	var out strings.Builder
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.Join(strings.Fields(strings.Map(func(r rune) rune {
			if isControlRune(r) {
				return ' '
			}
			return r
		}, line)), " ")
		if line == "" {
			continue
		}
		if out.Len() > 0 {
			out.WriteString(" | ")
		}
		out.WriteString(line)
	}
	if cut && out.Len() > 0 {
		return "..." + out.String()
	}
	return out.String()
}

func isControlRune(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r == 0x2028, r == 0x2029: // line and paragraph separators
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069: // bidirectional controls
		return true
	}
	return false
}
