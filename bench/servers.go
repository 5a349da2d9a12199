package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// ---- go-smtp server: discarding (a separate process) or recording (in process)

// record is what the recording server keeps of one message.
type record struct {
	From   string
	Rcpts  int
	Size   int64
	SHA256 [32]byte
	Err    string
}

type serverBackend struct {
	record bool
	mu     sync.Mutex
	recs   []record
}

func (b *serverBackend) NewSession(*gosmtp.Conn) (gosmtp.Session, error) {
	return &serverSession{b: b}, nil
}

// Take returns the records so far and forgets them.
func (b *serverBackend) Take() []record {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.recs
	b.recs = nil
	return r
}

type serverSession struct {
	b     *serverBackend
	from  string
	rcpts int
}

func (s *serverSession) Reset()        { s.from, s.rcpts = "", 0 }
func (s *serverSession) Logout() error { return nil }
func (s *serverSession) Mail(from string, _ *gosmtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *serverSession) Rcpt(string, *gosmtp.RcptOptions) error {
	s.rcpts++
	return nil
}
func (s *serverSession) Data(r io.Reader) error {
	if !s.b.record {
		_, err := io.Copy(io.Discard, r)
		return err
	}
	h := sha256.New()
	n, err := io.Copy(h, r)
	rec := record{From: s.from, Rcpts: s.rcpts, Size: n}
	copy(rec.SHA256[:], h.Sum(nil))
	if err != nil {
		rec.Err = err.Error()
	}
	s.b.mu.Lock()
	s.b.recs = append(s.b.recs, rec)
	s.b.mu.Unlock()
	return err
}

func newGoSMTPServer(be *serverBackend) *gosmtp.Server {
	s := gosmtp.NewServer(be)
	s.Domain = "gosmtp.bench.example"
	s.MaxMessageBytes = 0 // no limit; advertises SIZE without a number
	s.MaxRecipients = 0
	s.ErrorLog = log.New(io.Discard, "", 0)
	return s
}

// startRecorder runs a recording go-smtp server in this process.
func startRecorder() (*serverBackend, string, func(), error) {
	be := &serverBackend{record: true}
	s := newGoSMTPServer(be)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, err
	}
	go s.Serve(ln)
	return be, ln.Addr().String(), func() { s.Close() }, nil
}

// serverMain is the "server" subcommand: a discarding go-smtp server (which
// offers CHUNKING) in its own process. It prints "listening ADDR" and serves
// until its standard input is closed.
func serverMain(args []string) {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	fs.Parse(args)
	s := newGoSMTPServer(&serverBackend{})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening %s\n", ln.Addr())
	go s.Serve(ln)
	io.Copy(io.Discard, os.Stdin)
	s.Close()
}

// ---- processes the harness starts

// serverProc is a server process started by the harness.
type serverProc struct {
	Name  string
	Addr  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// Stop ends the process (by its own pid) and waits for it.
func (p *serverProc) Stop() {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return
	}
	if p.stdin != nil {
		p.stdin.Close()
	}
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(2 * time.Second):
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// startGoSMTPProcess re-executes this binary as a discarding go-smtp server.
func startGoSMTPProcess(self string) (*serverProc, error) {
	cmd := exec.Command(self, "server")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &serverProc{Name: "go-smtp server", cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening ") {
		p.Stop()
		return nil, fmt.Errorf("go-smtp server did not start: %q %v", line, err)
	}
	p.Addr = strings.TrimSpace(strings.TrimPrefix(line, "listening "))
	return p, waitSMTP(p.Addr, 5*time.Second)
}

// startSmtpSink starts Postfix's smtp-sink on a free loopback port. It
// offers PIPELINING (and 8BITMIME, ENHANCEDSTATUSCODES, DSN), not SIZE,
// CHUNKING or TLS.
func startSmtpSink(path string) (*serverProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// -a: no AUTH; -C, -F: no XCLIENT/XFORWARD; -u: required as root;
	// -m: connection limit above every scenario's; backlog 1024.
	args := []string{"-a", "-C", "-F", "-m", "512"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	args = append(args, addr, "1024")
	cmd := exec.Command(path, args...)
	cmd.Stdout = io.Discard
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &serverProc{Name: "smtp-sink", Addr: addr, cmd: cmd}
	if err := waitSMTP(addr, 5*time.Second); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitSMTP waits until addr answers with a 220 greeting.
func waitSMTP(addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Write([]byte("QUIT\r\n"))
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "220") {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return errors.New("no SMTP greeting from " + addr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// procCPU returns the CPU time used so far by all threads of a process, from
// /proc/PID/task/*/schedstat (nanoseconds, unlike the clock ticks of
// /proc/PID/stat), or -1.
func procCPU(pid int) time.Duration {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return -1
	}
	var total int64
	for _, e := range ents {
		b, err := os.ReadFile(dir + "/" + e.Name() + "/schedstat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			total += ns
		}
	}
	return time.Duration(total)
}

// CPU returns the server process's CPU time so far, or -1.
func (p *serverProc) CPU() time.Duration {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return -1
	}
	return procCPU(p.cmd.Process.Pid)
}
