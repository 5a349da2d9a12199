package reliability_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/faultproxy"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// ---- figures ----------------------------------------------------------------

// figure counts the runs of one kind that passed every check.
type figure struct {
	name string
	mu   sync.Mutex
	ok   int
	all  int
	note []string
}

func newFigure(name string) *figure { return &figure{name: name} }

func (f *figure) add(ok bool) {
	f.mu.Lock()
	f.all++
	if ok {
		f.ok++
	}
	f.mu.Unlock()
}

func (f *figure) notef(format string, args ...any) {
	f.mu.Lock()
	f.note = append(f.note, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

// log writes the figure with the stable prefix "FIGURE ".
func (f *figure) log(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	extra := ""
	if len(f.note) > 0 {
		extra = " (" + strings.Join(f.note, "; ") + ")"
	}
	t.Logf("FIGURE %s %d/%d%s", f.name, f.ok, f.all, extra)
}

// ---- known bugs ----------------------------------------------------------------

// knownBugs lists client bugs reported to the transport's owner, each with
// a failing test in bugs_test.go (skipped while it is being fixed). The
// sweeps count a violation that matches one of these signatures as
// "known" instead of failing, and log it; delete the entry once the bug is
// fixed and the sweep is strict again.
var knownBugs = map[string]string{}

type bugCounter struct {
	mu sync.Mutex
	n  map[string]int
}

var bugs = &bugCounter{n: map[string]int{}}

// known reports whether a violation matches a known bug, counting it.
func (b *bugCounter) known(id string) bool {
	if _, ok := knownBugs[id]; !ok {
		return false
	}
	b.mu.Lock()
	b.n[id]++
	b.mu.Unlock()
	return true
}

func (b *bugCounter) log(t *testing.T) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ids := make([]string, 0, len(b.n))
	for id := range b.n {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		t.Logf("KNOWN-BUG %s: %d runs hit it (%s)", id, b.n[id], knownBugs[id])
	}
}

// knownf formats a problem that matches the known bug id.
func knownf(id, format string, args ...any) string {
	return "KNOWN:" + id + ": " + fmt.Sprintf(format, args...)
}

// dropKnown removes the problems that match a known bug, counting them.
func dropKnown(p []string) []string {
	var out []string
	for _, s := range p {
		if rest, ok := strings.CutPrefix(s, "KNOWN:"); ok {
			id, _, _ := strings.Cut(rest, ":")
			if bugs.known(id) {
				continue
			}
		}
		out = append(out, s)
	}
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	os.Exit(code)
}

// ---- leaks ------------------------------------------------------------------

var goroutineHeader = regexp.MustCompile(`^goroutine (\d+) \[`)

// goroutines returns the stacks of all goroutines by id.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		if m := goroutineHeader.FindStringSubmatch(g); m != nil {
			out[m[1]] = g
		}
	}
	return out
}

func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// snapshot is the goroutines and file descriptors before a run.
type snapshot struct {
	g   map[string]string
	fds int
}

func takeSnapshot() snapshot { return snapshot{g: goroutines(), fds: openFDs()} }

// leaks waits up to settle for the goroutines started and the descriptors
// opened since s to go away, and describes what is left.
func (s snapshot) leaks(settle time.Duration) string {
	deadline := time.Now().Add(settle)
	for {
		var extra []string
		for id, stack := range goroutines() {
			if _, ok := s.g[id]; ok {
				continue
			}
			if benign(stack) {
				continue
			}
			extra = append(extra, stack)
		}
		fds := openFDs()
		if len(extra) == 0 && fds <= s.fds {
			return ""
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			if fds > s.fds {
				fmt.Fprintf(&b, "%d file descriptors leaked (%d before, %d after)\n", fds-s.fds, s.fds, fds)
			}
			for _, g := range extra {
				b.WriteString(g)
				b.WriteString("\n\n")
			}
			return b.String()
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// benign reports goroutines that may outlive a run without being a leak:
// none so far; the hook is here for the day a dependency starts a
// background goroutine of its own.
func benign(stack string) bool { return false }

// ---- modes ------------------------------------------------------------------

const (
	testUser     = "alice"
	testPassword = "Pa55-w0rd-S3cret-Xyzzy"
	localName    = "client.test"
	fromAddr     = "sender@example.org"
)

var rcptAddrs = []string{"rcpt1@example.org", "rcpt2@example.org"}

// refMessage has a leading dot, an empty line and a dot after it, so that
// the data phase is exercised, and a marker for the ledger checks.
const refMessage = "From: <sender@example.org>\r\nTo: <rcpt1@example.org>\r\nSubject: reliability\r\n" +
	"Message-ID: <reference@mailwire.test>\r\n\r\n.a line with a leading dot\r\n\r\n.\r\nlast line\r\n"

// mode is one transport mode under test.
type mode struct {
	name     string
	lmtp     bool
	unix     bool
	security transport.Security // server and client
	auth     bool               // the reference session authenticates
	noPool   bool               // Pool.MaxIdleConns < 0: each Send dials and QUITs
}

var modes = []mode{
	{name: "plain", security: transport.Plaintext},
	{name: "plain-nopool", security: transport.Plaintext, noPool: true},
	{name: "starttls", security: transport.StartTLS, auth: true},
	{name: "implicit-tls", security: transport.ImplicitTLS, auth: true},
	{name: "lmtp-tcp", lmtp: true, security: transport.Plaintext},
	{name: "lmtp-unix", lmtp: true, unix: true, security: transport.Plaintext},
}

func modeByName(name string) mode {
	for _, m := range modes {
		if m.name == name {
			return m
		}
	}
	panic("no mode " + name)
}

func (m mode) tls() bool {
	return m.security == transport.StartTLS || m.security == transport.ImplicitTLS
}

// pki holds the certificates of the tests: the real servers' CA and the
// proxy's CA (trusted by the client when the proxy intercepts TLS).
type pki struct {
	serverCA, proxyCA *faultproxy.CA
	serverCert        tls.Certificate
	proxyCert         tls.Certificate
}

var (
	pkiOnce sync.Once
	thePKI  *pki
	pkiErr  error
)

func certs(t testing.TB) *pki {
	t.Helper()
	pkiOnce.Do(func() {
		p := &pki{}
		if p.serverCA, pkiErr = faultproxy.NewCA("reliability server CA"); pkiErr != nil {
			return
		}
		if p.proxyCA, pkiErr = faultproxy.NewCA("reliability proxy CA"); pkiErr != nil {
			return
		}
		if p.serverCert, pkiErr = p.serverCA.Issue(faultproxy.Loopback()); pkiErr != nil {
			return
		}
		if p.proxyCert, pkiErr = p.proxyCA.Issue(faultproxy.Loopback()); pkiErr != nil {
			return
		}
		thePKI = p
	})
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return thePKI
}

// newServer starts a real server (smtptest) for the mode.
func newServer(t testing.TB, m mode) *smtptest.Server {
	t.Helper()
	s := smtptest.NewUnstartedServer()
	s.LMTP = m.lmtp
	if m.unix {
		s.Network = "unix"
	}
	s.Security = m.security
	if m.tls() {
		s.TLS = &tls.Config{Certificates: []tls.Certificate{certs(t).serverCert}}
	}
	if m.auth {
		s.Users = map[string]string{testUser: testPassword}
		s.RequireAuth = true
	}
	s.ErrorLog = quietLog
	s.Start()
	return s
}

// proxyConfig returns the proxy configuration for the mode in front of
// srv; intercept terminates TLS so that offsets count plaintext.
func proxyConfig(t testing.TB, m mode, srv *smtptest.Server, intercept bool) faultproxy.Config {
	cfg := faultproxy.Config{Target: srv.Addr}
	if m.unix {
		cfg.Network, cfg.TargetNetwork = "unix", "unix"
	}
	if intercept && m.tls() {
		p := certs(t)
		cfg.TLS = faultproxy.ServerConfig(p.proxyCert)
		cfg.UpstreamTLS = &tls.Config{RootCAs: p.serverCA.Pool(), ServerName: "127.0.0.1"}
		if m.security == transport.ImplicitTLS {
			cfg.ImplicitTLS = true
		} else {
			cfg.InterceptSTARTTLS = true
		}
	}
	return cfg
}

// newTransport returns the client for the mode, dialing addr; intercept
// says whether the client must trust the proxy's CA or the server's.
func newTransport(t testing.TB, m mode, addr string, intercept bool, debug *bytes.Buffer) transport.Transport {
	p := certs(t)
	pool := p.serverCA.Pool()
	if intercept {
		pool = p.proxyCA.Pool()
	}
	network := "tcp"
	if m.unix {
		network = "unix"
	}
	var dbg *lockedBuffer
	if debug != nil {
		dbg = &lockedBuffer{b: debug}
	}
	if m.lmtp {
		tr := &transport.LMTP{Network: network, Addr: addr, LocalName: localName}
		if m.noPool {
			tr.Pool.MaxIdleConns = -1
		}
		if dbg != nil {
			tr.Debug = dbg
		}
		return tr
	}
	tr := &transport.SMTP{
		Network:   network,
		Addr:      addr,
		Security:  m.security,
		LocalName: localName,
		TLSConfig: &tls.Config{RootCAs: pool, CurvePreferences: []tls.CurveID{tls.X25519}},
	}
	if m.noPool {
		tr.Pool.MaxIdleConns = -1
	}
	if m.auth {
		tr.Auth = auth.Config{Credentials: auth.Credentials{Username: testUser, Password: testPassword}, Mechanisms: []string{"PLAIN"}}
	}
	if dbg != nil {
		tr.Debug = dbg
	}
	return tr
}

type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func refEnvelope() *envelope.Envelope { return envelope.New(fromAddr, rcptAddrs...) }

// outcome of one Send.
type sendResult struct {
	res       *transport.Result
	err       error
	elapsed   time.Duration // Send alone
	closeIdle time.Duration // the CloseIdleConnections after it
	panic     any
}

// send runs one Send with a deadline and closes idle connections after it.
func send(tr transport.Transport, timeout time.Duration, env *envelope.Envelope, msg string) (out sendResult) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	begin := time.Now()
	defer func() {
		out.elapsed = time.Since(begin)
		if p := recover(); p != nil {
			out.panic = p
		}
		begin := time.Now()
		transport.CloseIdleConnections(tr)
		out.closeIdle = time.Since(begin)
	}()
	out.res, out.err = tr.Send(ctx, env, strings.NewReader(msg))
	return out
}

// ---- checks -----------------------------------------------------------------

var opOf = map[string]transport.Op{
	"GREETING": transport.OpGreeting, "EHLO": transport.OpHello, "HELO": transport.OpHello, "LHLO": transport.OpHello,
	"STARTTLS": transport.OpStartTLS, "AUTH": transport.OpAuth, "AUTH-RESPONSE": transport.OpAuth,
	"MAIL": transport.OpMail, "RSET": transport.OpMail, "RCPT": transport.OpRcpt, "DATA": transport.OpData,
	"BDAT": transport.OpData, ".": transport.OpEndOfData,
}

var validOutcome = map[transport.Outcome]bool{
	transport.Accepted: true, transport.TempFailed: true, transport.PermFailed: true, transport.Unknown: true,
}

// checkShape checks what every Send must return: one valid outcome per
// recipient and an error consistent with them. It returns the problems.
func checkShape(r sendResult, env *envelope.Envelope) []string {
	var p []string
	if r.panic != nil {
		return []string{fmt.Sprintf("panic: %v", r.panic)}
	}
	if r.res == nil {
		return []string{fmt.Sprintf("nil Result (err %v)", r.err)}
	}
	if len(r.res.Rcpts) != len(env.To) {
		return []string{fmt.Sprintf("%d results for %d recipients", len(r.res.Rcpts), len(env.To))}
	}
	accepted := 0
	for i, rr := range r.res.Rcpts {
		if !validOutcome[rr.Outcome] {
			p = append(p, fmt.Sprintf("recipient %d: outcome %v", i, rr.Outcome))
		}
		if rr.Outcome == transport.Accepted {
			accepted++
		} else if rr.Err == nil {
			p = append(p, fmt.Sprintf("recipient %d: %v without an error", i, rr.Outcome))
		}
	}
	switch {
	case accepted == len(env.To) && r.err != nil:
		p = append(p, fmt.Sprintf("every recipient accepted but err = %v", r.err))
	case accepted < len(env.To) && r.err == nil:
		p = append(p, "a recipient was not accepted but err = nil")
	case accepted > 0 && accepted < len(env.To):
		var re *transport.RcptError
		if !errors.As(r.err, &re) {
			p = append(p, fmt.Sprintf("partial delivery: err %T %v is not a Result.Err aggregate", r.err, r.err))
		}
	}
	for i, rr := range r.res.Rcpts {
		// The recipient's own error classifies as its outcome does.
		switch {
		case rr.Outcome == transport.Unknown && !errors.Is(rr.Err, transport.ErrUnknownOutcome):
			p = append(p, fmt.Sprintf("recipient %d: unknown outcome whose error does not match ErrUnknownOutcome: %v", i, rr.Err))
		case rr.Outcome == transport.PermFailed && errors.Is(rr.Err, transport.ErrTransient):
			p = append(p, fmt.Sprintf("recipient %d: perm-failed with a transient error: %v", i, rr.Err))
		case rr.Outcome == transport.TempFailed && errors.Is(rr.Err, transport.ErrPermanent):
			p = append(p, fmt.Sprintf("recipient %d: temp-failed with a permanent error: %v", i, rr.Err))
		}
	}
	return p
}

// opError returns the *OpError in err, if any.
func opError(err error) *transport.OpError {
	var oe *transport.OpError
	if errors.As(err, &oe) {
		return oe
	}
	return nil
}

// delivered counts, per recipient, the copies of refMessage-like data a
// server recorded; data must equal want (after the server's unstuffing).
func deliveredCounts(msgs []smtptest.Message, want string) (map[string]int, []string) {
	out := map[string]int{}
	var problems []string
	for _, m := range msgs {
		if string(m.Data) != want {
			if strings.HasPrefix(want, string(m.Data)) && m.Chunked {
				// go-smtp takes a BDAT chunk cut short by a lost
				// connection for a whole one (a server bug, reported);
				// the truncated copy is not the message.
				truncatedBDAT.Add(1)
				continue
			}
			problems = append(problems, fmt.Sprintf("server stored %q, want %q", m.Data, want))
			continue
		}
		for _, r := range m.Delivered {
			out[strings.ToLower(r)]++
		}
	}
	return out, problems
}

// truncatedBDAT counts truncated messages smtptest stored after a cut in
// the middle of a BDAT chunk.
var truncatedBDAT atomic.Int64

var quietLog = log.New(io.Discard, "", 0)
