package transport_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
)

// The Sendmail tests run this test binary as the sendmail program: it
// behaves as a fake sendmail when smFakeDir is set in its environment (the
// tests set it through Sendmail.Env). The real /usr/sbin/sendmail is never
// run: it would queue real mail.
const (
	smFakeDir    = "MAILWIRE_FAKE_SENDMAIL_DIR" // where the fake records what it got
	smFakeExit   = "MAILWIRE_FAKE_SENDMAIL_EXIT"
	smFakeStderr = "MAILWIRE_FAKE_SENDMAIL_STDERR"
	smFakeRepeat = "MAILWIRE_FAKE_SENDMAIL_STDERR_REPEAT"
	smFakeMode   = "MAILWIRE_FAKE_SENDMAIL_MODE"
)

// TestSendmailFakeProgram is not a test: it is the fake sendmail program,
// run by the other Sendmail tests, and skips otherwise.
func TestSendmailFakeProgram(t *testing.T) {
	dir := os.Getenv(smFakeDir)
	if dir == "" {
		t.Skip("the fake sendmail program of the Sendmail tests")
	}
	os.Exit(smFake(dir))
}

// smFake records its arguments (those after the first "--", which ends the
// test binary's own flags) and its standard input in dir, writes the
// requested standard error and exits with the requested status. Modes:
// "hang" sleeps after reading its input, "hang-unread" sleeps without
// reading, "early" exits without reading, "crash" kills itself after
// reading.
func smFake(dir string) int {
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(100)
		}
	}
	write("pid", []byte(strconv.Itoa(os.Getpid())))
	args := os.Args[1:]
	if i := slices.Index(args, "--"); i >= 0 {
		args = args[i+1:]
	}
	b, _ := json.Marshal(args)
	write("args", b)
	code, _ := strconv.Atoi(os.Getenv(smFakeExit))
	stderr := func() {
		n, err := strconv.Atoi(os.Getenv(smFakeRepeat))
		if err != nil {
			n = 1
		}
		io.WriteString(os.Stderr, strings.Repeat(os.Getenv(smFakeStderr), n))
	}
	mode := os.Getenv(smFakeMode)
	switch mode {
	case "hang-unread":
		time.Sleep(5 * time.Minute)
		return code
	case "early":
		stderr()
		return code
	}
	f, err := os.Create(filepath.Join(dir, "stdin"))
	if err != nil {
		return 100
	}
	buf := make([]byte, 32<<10)
	started := false
	for {
		n, err := os.Stdin.Read(buf)
		if n > 0 {
			f.Write(buf[:n])
			if !started {
				started = true
				write("started", nil)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 100
		}
	}
	f.Close()
	write("eof", nil) // the whole input was read
	stderr()
	switch mode {
	case "hang":
		time.Sleep(5 * time.Minute)
	case "crash":
		p, _ := os.FindProcess(os.Getpid())
		p.Kill()
		time.Sleep(time.Minute)
	}
	return code
}

// smSendmail returns a Sendmail running the fake, configured by the
// "KEY=value" settings in env, and the directory where it records what it
// got. extra are arguments put before Send's own.
func smSendmail(t *testing.T, env []string, extra ...string) (*transport.Sendmail, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Skip("cannot find the test binary:", err)
	}
	dir := t.TempDir()
	return &transport.Sendmail{
		Path: exe,
		Args: append([]string{"-test.run=^TestSendmailFakeProgram$", "--"}, extra...),
		// GORACE: a race-enabled program otherwise sleeps a second on exit.
		Env: append(append(os.Environ(), smFakeDir+"="+dir, "GORACE=atexit_sleep_ms=0"), env...),
	}, dir
}

func smRead(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("the fake sendmail did not record %s: %v", name, err)
	}
	return b
}

func smArgs(t *testing.T, dir string) []string {
	t.Helper()
	var args []string
	if err := json.Unmarshal(smRead(t, dir, "args"), &args); err != nil {
		t.Fatal(err)
	}
	return args
}

func smExists(dir, name string) bool {
	_, err := os.Stat(filepath.Join(dir, name))
	return err == nil
}

func smCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

const smMsg = "From: alice@example.org\r\nSubject: via sendmail\r\n\r\nline one\r\n.\r\nline three\r\n"

func smOutcomes(t *testing.T, res *transport.Result, n int, want transport.Outcome) {
	t.Helper()
	if res == nil || len(res.Rcpts) != n {
		t.Fatalf("Result = %+v, want %d recipients", res, n)
	}
	for _, rr := range res.Rcpts {
		if rr.Outcome != want {
			t.Errorf("<%s>: outcome %v, want %v (err %v)", rr.Addr, rr.Outcome, want, rr.Err)
		}
		if rr.Attempts != 1 || rr.Reply != nil {
			t.Errorf("<%s>: Attempts %d, Reply %v; want 1 and nil", rr.Addr, rr.Attempts, rr.Reply)
		}
	}
}

func TestSendmailArguments(t *testing.T) {
	tests := []struct {
		name  string
		env   *envelope.Envelope
		extra []string
		want  []string
	}{
		{"plain", envelope.New("alice@example.org", "bob@example.org", "carol@example.org"), nil,
			[]string{"-i", "-f", "alice@example.org", "--", "bob@example.org", "carol@example.org"}},
		{"null sender", envelope.New("", "bob@example.org"), nil,
			[]string{"-i", "-f", "<>", "--", "bob@example.org"}},
		{"extra arguments first", envelope.New("alice@example.org", "bob@example.org"), []string{"-oQ/var/spool/other", "-Fbulk"},
			[]string{"-oQ/var/spool/other", "-Fbulk", "-i", "-f", "alice@example.org", "--", "bob@example.org"}},
		{"quoted and non-ASCII", envelope.New(`"alice smith"@example.org`, "bøb@exämple.org"), nil,
			[]string{"-i", "-f", `"alice smith"@example.org`, "--", "bøb@exämple.org"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := smSendmail(t, nil, tt.extra...)
			res, err := s.Send(smCtx(t), tt.env, strings.NewReader(smMsg))
			if err != nil {
				t.Fatalf("Send err = %v, want nil", err)
			}
			smOutcomes(t, res, len(tt.env.To), transport.Accepted)
			if res.Reply != nil {
				t.Errorf("Reply = %v, want nil", res.Reply)
			}
			if got := smArgs(t, dir); !slices.Equal(got, tt.want) {
				t.Errorf("arguments = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSendmailLineEndings(t *testing.T) {
	tests := []struct{ in, want string }{
		{smMsg, "From: alice@example.org\nSubject: via sendmail\n\nline one\n.\nline three\n"},
		{"a\rb\r\n", "a\rb\n"},
		{"bare\nlf\n", "bare\nlf\n"},
		{"ends in cr\r", "ends in cr\r"},
		{"\r\r\n\r", "\r\n\r"},
		{"..\r\n.\r\nno final newline", "..\n.\nno final newline"},
		{"", ""},
	}
	for i, tt := range tests {
		for _, oneByte := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/one-byte-%v", i, oneByte), func(t *testing.T) {
				s, dir := smSendmail(t, nil)
				var r io.Reader = strings.NewReader(tt.in)
				if oneByte {
					r = iotest.OneByteReader(r)
				}
				if _, err := s.Send(smCtx(t), envelope.New("alice@example.org", "bob@example.org"), r); err != nil {
					t.Fatal(err)
				}
				if got := string(smRead(t, dir, "stdin")); got != tt.want {
					t.Errorf("the program got %q from %q, want %q", got, tt.in, tt.want)
				}
			})
		}
	}
}

// smStreamBody gives a first part, then waits until the fake program
// reports it received bytes before giving the rest: a Send that read the
// whole body before writing any of it would never finish.
type smStreamBody struct {
	dir   string
	first io.Reader
	rest  io.Reader
}

func (b *smStreamBody) Read(p []byte) (int, error) {
	if n, err := b.first.Read(p); n > 0 || err != io.EOF {
		return n, err
	}
	if b.dir != "" {
		deadline := time.Now().Add(30 * time.Second)
		for !smExists(b.dir, "started") {
			if time.Now().After(deadline) {
				return 0, errors.New("the program got nothing while the body was being read")
			}
			time.Sleep(5 * time.Millisecond)
		}
		b.dir = ""
	}
	return b.rest.Read(p)
}

func TestSendmailStreamsBody(t *testing.T) {
	s, dir := smSendmail(t, nil)
	line := "a line of the body, long enough to matter, 0123456789\r\n"
	rest := strings.Repeat(line, 8<<20/len(line))
	body := &smStreamBody{dir: dir, first: strings.NewReader("Subject: big\r\n\r\n"), rest: strings.NewReader(rest)}
	if _, err := s.Send(smCtx(t), envelope.New("alice@example.org", "bob@example.org"), body); err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll("Subject: big\r\n\r\n"+rest, "\r\n", "\n")
	got := smRead(t, dir, "stdin")
	if len(got) != len(want) || sha256.Sum256(got) != sha256.Sum256([]byte(want)) {
		t.Errorf("the program got %d bytes, want %d, converted to LF", len(got), len(want))
	}
}

func TestSendmailExitStatus(t *testing.T) {
	tests := []struct {
		code      int
		name      string
		transient bool
	}{
		{64, "EX_USAGE", false},
		{65, "EX_DATAERR", false},
		{67, "EX_NOUSER", false},
		{68, "EX_NOHOST", false},
		{69, "EX_UNAVAILABLE", false},
		{70, "EX_SOFTWARE", false},
		{71, "EX_OSERR", true},
		{74, "EX_IOERR", true},
		{75, "EX_TEMPFAIL", true},
		{77, "EX_NOPERM", false},
		{78, "EX_CONFIG", false},
		{1, "", false},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.code), func(t *testing.T) {
			s, dir := smSendmail(t, []string{
				smFakeExit + "=" + strconv.Itoa(tt.code),
				smFakeStderr + "=sendmail: fatal: \x1b[31mno\x01 luck\r\nsecond\tline\n\n",
			})
			res, err := s.Send(smCtx(t), envelope.New("alice@example.org", "bob@example.org", "carol@example.org"), strings.NewReader(smMsg))
			transient := errors.Is(err, transport.ErrTransient)
			permanent := errors.Is(err, transport.ErrPermanent)
			if transient != tt.transient || permanent == tt.transient || errors.Is(err, transport.ErrUnknownOutcome) {
				t.Errorf("err = %v: transient %v, permanent %v; want transient %v only", err, transient, permanent, tt.transient)
			}
			want := transport.PermFailed
			if tt.transient {
				want = transport.TempFailed
			}
			smOutcomes(t, res, 2, want)
			var ee *transport.ExitError
			if !errors.As(err, &ee) || ee.Code != tt.code {
				t.Fatalf("err = %v, want an ExitError with status %d", err, tt.code)
			}
			if want := "sendmail: fatal: [31mno luck | second line"; ee.Stderr != want {
				t.Errorf("Stderr = %q, want %q", ee.Stderr, want)
			}
			var oe *transport.OpError
			if !errors.As(err, &oe) || oe.Op != transport.OpEndOfData || oe.Addr != s.Path {
				t.Errorf("err = %v, want an OpError at end-of-data for %s", err, s.Path)
			}
			wantText := "exit status " + strconv.Itoa(tt.code)
			if tt.name != "" {
				wantText += " (" + tt.name + ")"
			}
			if !strings.Contains(err.Error(), wantText+": sendmail: fatal") {
				t.Errorf("err = %q, want it to contain %q and the program's error", err, wantText)
			}
			if !smExists(dir, "eof") {
				t.Error("the program did not get the whole message")
			}
		})
	}
}

func TestSendmailStderrBounded(t *testing.T) {
	s, _ := smSendmail(t, []string{
		smFakeExit + "=75",
		smFakeStderr + "=0123456789abcdef",
		smFakeRepeat + "=1024", // 16 KiB
	})
	_, err := s.Send(smCtx(t), envelope.New("alice@example.org", "bob@example.org"), strings.NewReader(smMsg))
	var ee *transport.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("err = %v, want an ExitError", err)
	}
	if len(ee.Stderr) > 4<<10+3 || !strings.HasPrefix(ee.Stderr, "...") || !strings.HasSuffix(ee.Stderr, "0123456789abcdef") {
		t.Errorf("Stderr has %d bytes: %.20q...%q; want at most 4 KiB of the end, marked as cut", len(ee.Stderr), ee.Stderr, ee.Stderr[max(0, len(ee.Stderr)-20):])
	}
}

// smGone reports whether the fake program whose pid it recorded in dir has
// ended and been waited for.
func smGone(t *testing.T, dir string) bool {
	t.Helper()
	pid, err := strconv.Atoi(string(smRead(t, dir, "pid")))
	if err != nil {
		t.Fatal(err)
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return true
	}
	return p.Signal(syscall.Signal(0)) != nil
}

func TestSendmailContext(t *testing.T) {
	big := strings.Repeat("x", 4<<20) // more than a pipe holds

	t.Run("deadline after the whole message", func(t *testing.T) {
		s, dir := smSendmail(t, []string{smFakeMode + "=hang"})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		res, err := s.Send(ctx, envelope.New("alice@example.org", "bob@example.org"), strings.NewReader(smMsg))
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("Send returned after %v; the program was not killed promptly", d)
		}
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, transport.ErrUnknownOutcome) || errors.Is(err, transport.ErrTransient) {
			t.Errorf("err = %v, want the deadline, an unknown outcome, not transient", err)
		}
		var oe *transport.OpError
		if !errors.As(err, &oe) || oe.Op != transport.OpEndOfData {
			t.Errorf("err = %v, want an OpError at end-of-data", err)
		}
		smOutcomes(t, res, 1, transport.Unknown)
		if !smGone(t, dir) {
			t.Error("the program is still running")
		}
	})

	t.Run("deadline before the end of the message", func(t *testing.T) {
		s, dir := smSendmail(t, []string{smFakeMode + "=hang-unread"})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		res, err := s.Send(ctx, envelope.New("alice@example.org", "bob@example.org"), strings.NewReader(big))
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("Send returned after %v; the program was not killed promptly", d)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want the deadline", err)
		}
		if errors.Is(err, transport.ErrTransient) || errors.Is(err, transport.ErrPermanent) || errors.Is(err, transport.ErrUnknownOutcome) {
			t.Errorf("err = %v matches a class; the caller's deadline must match none", err)
		}
		var oe *transport.OpError
		if !errors.As(err, &oe) || oe.Op != transport.OpData {
			t.Errorf("err = %v, want an OpError at data", err)
		}
		smOutcomes(t, res, 1, transport.TempFailed)
		if !smGone(t, dir) {
			t.Error("the program is still running")
		}
	})

	t.Run("cancelled with a cause", func(t *testing.T) {
		s, _ := smSendmail(t, []string{smFakeMode + "=hang-unread"})
		stop := errors.New("shutting down")
		ctx, cancel := context.WithCancelCause(context.Background())
		time.AfterFunc(200*time.Millisecond, func() { cancel(stop) })
		_, err := s.Send(ctx, envelope.New("alice@example.org", "bob@example.org"), strings.NewReader(big))
		if !errors.Is(err, stop) {
			t.Errorf("err = %v, want the cause", err)
		}
	})

	t.Run("done before", func(t *testing.T) {
		s, dir := smSendmail(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		res, err := s.Send(ctx, envelope.New("alice@example.org", "bob@example.org"), strings.NewReader(smMsg))
		var oe *transport.OpError
		if !errors.Is(err, context.Canceled) || !errors.As(err, &oe) || oe.Op != transport.OpDial {
			t.Errorf("err = %v, want context.Canceled at dial", err)
		}
		smOutcomes(t, res, 1, transport.TempFailed)
		if smExists(dir, "pid") {
			t.Error("the program was started")
		}
	})
}

func TestSendmailRefusedBeforeStarting(t *testing.T) {
	tests := []struct {
		name  string
		env   *envelope.Envelope
		field string
		check func(err error) bool
	}{
		{"dash recipient", envelope.New("alice@example.org", "bob@example.org", "-oQ/tmp@example.org"), "to[1]",
			func(err error) bool { return errors.Is(err, transport.ErrDashAddress) }},
		{"dash sender", envelope.New("-bs@example.org", "bob@example.org"), "from",
			func(err error) bool { return errors.Is(err, transport.ErrDashAddress) }},
		{"control character", envelope.New("alice@example.org", "bob@example.org\n-t"), "to[0]",
			func(err error) bool { return errors.Is(err, envelope.ErrControlChar) }},
		{"no recipients", envelope.New("alice@example.org"), "to",
			func(err error) bool { return errors.Is(err, envelope.ErrNoRecipients) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := smSendmail(t, nil)
			res, err := s.Send(smCtx(t), tt.env, strings.NewReader(smMsg))
			var oe *transport.OpError
			var ee *envelope.Error
			if !errors.As(err, &oe) || oe.Op != transport.OpEnvelope || !errors.As(err, &ee) || ee.Field != tt.field || !tt.check(err) {
				t.Errorf("err = %v, want an envelope error for %s", err, tt.field)
			}
			if !errors.Is(err, transport.ErrPermanent) {
				t.Errorf("err = %v, want permanent", err)
			}
			smOutcomes(t, res, len(tt.env.To), transport.PermFailed)
			if smExists(dir, "pid") {
				t.Error("the program was started")
			}
		})
	}

	t.Run("default path", func(t *testing.T) {
		// Refused before starting anything, so the real sendmail is not run.
		_, err := (&transport.Sendmail{}).Send(smCtx(t), envelope.New("alice@example.org", "-x@example.org"), strings.NewReader(smMsg))
		var oe *transport.OpError
		if !errors.As(err, &oe) || oe.Addr != transport.DefaultSendmailPath || !errors.Is(err, transport.ErrDashAddress) {
			t.Errorf("err = %v, want a refusal naming %s", err, transport.DefaultSendmailPath)
		}
	})

	unsupported := map[string]func(e *envelope.Envelope){
		"REQUIRETLS": func(e *envelope.Envelope) { e.RequireTLS = true },
		"DSN":        func(e *envelope.Envelope) { e.Return = envelope.ReturnHeaders },
		"BINARYMIME": func(e *envelope.Envelope) { e.Body = envelope.BodyBinaryMIME },
	}
	for ext, set := range unsupported {
		t.Run(ext, func(t *testing.T) {
			s, dir := smSendmail(t, nil)
			env := envelope.New("alice@example.org", "bob@example.org")
			set(env)
			_, err := s.Send(smCtx(t), env, strings.NewReader(smMsg))
			var ne *transport.NotSupportedError
			if !errors.As(err, &ne) || ne.Extension != ext || !errors.Is(err, errors.ErrUnsupported) || !errors.Is(err, transport.ErrPermanent) {
				t.Errorf("err = %v, want a permanent NotSupportedError for %s", err, ext)
			}
			if smExists(dir, "pid") {
				t.Error("the program was started")
			}
		})
	}

	t.Run("DSN notify", func(t *testing.T) {
		s, _ := smSendmail(t, nil)
		env := envelope.New("alice@example.org", "bob@example.org")
		env.To[0].Notify = []envelope.DSNNotify{envelope.NotifyNever}
		_, err := s.Send(smCtx(t), env, strings.NewReader(smMsg))
		var ne *transport.NotSupportedError
		if !errors.As(err, &ne) || ne.Extension != "DSN" {
			t.Errorf("err = %v, want a NotSupportedError for DSN", err)
		}
	})

	t.Run("nil envelope", func(t *testing.T) {
		s, _ := smSendmail(t, nil)
		res, err := s.Send(smCtx(t), nil, strings.NewReader(smMsg))
		if res != nil || !errors.Is(err, envelope.ErrNoRecipients) {
			t.Errorf("Send(nil) = %v, %v; want nil and ErrNoRecipients", res, err)
		}
	})
}

func TestSendmailMissingProgram(t *testing.T) {
	for name, path := range map[string]string{
		"absolute":  filepath.Join(t.TempDir(), "no-such-sendmail"),
		"from PATH": "mailwire-no-such-sendmail-program",
	} {
		t.Run(name, func(t *testing.T) {
			res, err := (&transport.Sendmail{Path: path}).Send(smCtx(t), envelope.New("alice@example.org", "bob@example.org"), strings.NewReader(smMsg))
			var oe *transport.OpError
			if !errors.As(err, &oe) || oe.Op != transport.OpDial || oe.Addr != path {
				t.Errorf("err = %v, want an OpError at dial for %s", err, path)
			}
			if !errors.Is(err, exec.ErrNotFound) || !errors.Is(err, transport.ErrPermanent) || errors.Is(err, transport.ErrTransient) {
				t.Errorf("err = %v, want exec.ErrNotFound, permanent only", err)
			}
			if name == "absolute" && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("err = %v, want fs.ErrNotExist", err)
			}
			smOutcomes(t, res, 1, transport.PermFailed)
		})
	}
}

func TestSendmailEarlyExit(t *testing.T) {
	big := strings.Repeat("y", 4<<20) // more than a pipe holds

	t.Run("failure status", func(t *testing.T) {
		s, _ := smSendmail(t, []string{smFakeMode + "=early", smFakeExit + "=64", smFakeStderr + "=usage"})
		res, err := s.Send(smCtx(t), envelope.New("alice@example.org", "bob@example.org"), strings.NewReader(big))
		var ee *transport.ExitError
		var oe *transport.OpError
		if !errors.As(err, &ee) || ee.Code != 64 || !errors.Is(err, transport.ErrPermanent) || !errors.As(err, &oe) || oe.Op != transport.OpData {
			t.Errorf("err = %v, want a permanent ExitError 64 at data", err)
		}
		smOutcomes(t, res, 1, transport.PermFailed)
	})

	t.Run("success before the end of the message", func(t *testing.T) {
		s, _ := smSendmail(t, []string{smFakeMode + "=early"})
		res, err := s.Send(smCtx(t), envelope.New("alice@example.org", "bob@example.org"), strings.NewReader(big))
		var ee *transport.ExitError
		if !errors.As(err, &ee) || ee.Code != 0 || !errors.Is(err, transport.ErrUnknownOutcome) {
			t.Errorf("err = %v, want an ExitError 0 with an unknown outcome", err)
		}
		smOutcomes(t, res, 1, transport.Unknown)
	})

	t.Run("killed by a signal", func(t *testing.T) {
		s, _ := smSendmail(t, []string{smFakeMode + "=crash"})
		res, err := s.Send(smCtx(t), envelope.New("alice@example.org", "bob@example.org"), strings.NewReader(smMsg))
		var ee *transport.ExitError
		if !errors.As(err, &ee) || ee.Code != -1 || ee.Signal != "killed" || !errors.Is(err, transport.ErrUnknownOutcome) {
			t.Errorf("err = %v (%+v), want an ExitError for a killed program, unknown outcome", err, ee)
		}
		if !strings.Contains(fmt.Sprint(err), "signal: killed") {
			t.Errorf("err = %v, want it to name the signal", err)
		}
		smOutcomes(t, res, 1, transport.Unknown)
	})
}

func TestSendmailMessageReadError(t *testing.T) {
	s, dir := smSendmail(t, nil)
	broken := io.MultiReader(strings.NewReader("Subject: cut\r\n\r\nfirst part\r\n"), iotest.ErrReader(errors.New("disk on fire")))
	res, err := s.Send(smCtx(t), envelope.New("alice@example.org", "bob@example.org"), broken)
	var me *transport.MessageError
	if !errors.As(err, &me) {
		t.Fatalf("err = %v, want a MessageError", err)
	}
	if errors.Is(err, transport.ErrTransient) || errors.Is(err, transport.ErrPermanent) || errors.Is(err, transport.ErrUnknownOutcome) {
		t.Errorf("err = %v matches a class, want none", err)
	}
	smOutcomes(t, res, 1, transport.TempFailed)
	if smExists(dir, "eof") {
		t.Error("the program saw the end of a message cut short")
	}
}

func TestSendmailInFailover(t *testing.T) {
	// A missing program is a dial failure: Failover moves on to the next.
	backup := foServer(t, nil)
	missing := &transport.Sendmail{Path: filepath.Join(t.TempDir(), "no-such-sendmail")}
	res, err := transport.Failover(missing, backup.Transport()).
		Send(smCtx(t), envelope.New("alice@example.org", "bob@example.org"), bytes.NewReader([]byte(foMsg)))
	if err != nil {
		t.Fatalf("Send err = %v, want nil", err)
	}
	if n := res.Count(transport.Accepted); n != 1 {
		t.Errorf("accepted %d, want 1", n)
	}
	foDeliveredOnce(t, backup)

	// A temporary failure after the program read the message ends the
	// failover when the body cannot be rewound.
	tempfail, _ := smSendmail(t, []string{smFakeExit + "=75"})
	backup.Reset()
	_, err = transport.Failover(tempfail, backup.Transport()).
		Send(smCtx(t), envelope.New("alice@example.org", "bob@example.org"), foOnlyReader{strings.NewReader(foMsg)})
	if !errors.Is(err, transport.ErrTransient) {
		t.Errorf("err = %v, want transient", err)
	}
	foNothingDelivered(t, backup)
}
