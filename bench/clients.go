package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	netsmtp "net/smtp"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	mail "github.com/wneessen/go-mail"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
)

// clientParams is what one client run is asked to do. The child process gets
// them as flags and prints a clientResult as JSON on its standard output.
type clientParams struct {
	Client string
	Addr   string
	N      int // messages in all
	Rcpts  int
	Conns  int
	Msg    *msgFiles
	Large  bool // stream the message from its file for each send
}

// clientResult is what a client run reports.
type clientResult struct {
	Sent      int     `json:"sent"`
	ElapsedNS int64   `json:"elapsed_ns"`
	Allocs    float64 `json:"allocs_per_msg"` // Go heap allocations per message, -1 if unknown
	AllocB    float64 `json:"alloc_bytes_per_msg"`
	PeakRSS   int64   `json:"peak_rss"` // VmHWM of the process, bytes
	Err       string  `json:"err,omitempty"`
}

// goClient sends the messages of one connection: it dials, sends n messages
// and says QUIT. It is called once per connection, from its own goroutine.
type goClient func(ctx context.Context, p *clientParams, n int, src msgSource) (int, error)

// goClients are the clients that run inside the bench binary. The external
// clients (Python's smtplib, Postfix's smtp-source) are in external.go.
var goClients = map[string]goClient{
	"mailwire":      runMailwireConn,
	"mailwire-send": runMailwireSend,
	"go-smtp":       runGoSMTP,
	"net/smtp":      runNetSMTP,
	"go-mail":       runGoMail,
	"raw":           runRaw,
}

// msgSource hands out the message for each send.
type msgSource struct {
	data  []byte    // the canonical message, when held in memory
	mf    *msgFiles // the files, for large messages
	large bool
}

// open returns a reader of the canonical message and a function to release
// it.
func (s msgSource) open() (io.Reader, func(), error) {
	if !s.large {
		return bytes.NewReader(s.data), func() {}, nil
	}
	f, err := os.Open(s.mf.EML)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

// clientMain is the "client" subcommand: one client, one scenario, in its
// own process so that its peak RSS and CPU time can be read from rusage.
func clientMain(args []string) {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	var p clientParams
	var mf msgFiles
	fs.StringVar(&p.Client, "client", "mailwire", "client name")
	fs.StringVar(&p.Addr, "addr", "", "server host:port")
	fs.IntVar(&p.N, "n", 1, "messages")
	fs.IntVar(&p.Rcpts, "rcpts", 1, "recipients per message")
	fs.IntVar(&p.Conns, "conns", 1, "connections (goroutines)")
	fs.BoolVar(&p.Large, "large", false, "stream the message from its file")
	fs.StringVar(&mf.EML, "eml", "", "canonical message file")
	fs.StringVar(&mf.Wire, "wire", "", "dot-stuffed message file (raw client)")
	fs.Int64Var(&mf.BodyOff, "bodyoff", 0, "body offset in the message file")
	fs.Parse(args)
	p.Msg = &mf
	res := runGoClient(&p)
	json.NewEncoder(os.Stdout).Encode(res)
}

func runGoClient(p *clientParams) clientResult {
	run, ok := goClients[p.Client]
	if !ok {
		return clientResult{Err: "unknown client " + p.Client}
	}
	fi, err := os.Stat(p.Msg.EML)
	if err != nil {
		return clientResult{Err: err.Error()}
	}
	p.Msg.Size = fi.Size()
	src := msgSource{mf: p.Msg, large: p.Large}
	if !p.Large {
		if src.data, err = os.ReadFile(p.Msg.EML); err != nil {
			return clientResult{Err: err.Error()}
		}
	}
	ctx := context.Background()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	sent := 0
	var errs []error
	for i := 0; i < p.Conns; i++ {
		n := p.N / p.Conns
		if i < p.N%p.Conns {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := run(ctx, p, n, src)
			mu.Lock()
			sent += k
			if err != nil {
				errs = append(errs, err)
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	runtime.ReadMemStats(&ms1)
	res := clientResult{Sent: sent, ElapsedNS: elapsed.Nanoseconds()}
	if sent > 0 {
		res.Allocs = float64(ms1.Mallocs-ms0.Mallocs) / float64(sent)
		res.AllocB = float64(ms1.TotalAlloc-ms0.TotalAlloc) / float64(sent)
	}
	if err := errors.Join(errs...); err != nil {
		res.Err = err.Error()
	}
	res.PeakRSS = vmHWM(os.Getpid())
	return res
}

// vmHWM returns the peak resident set size of a process (VmHWM in
// /proc/PID/status), or 0. The rusage that wait4 returns is no use for this:
// a child's ru_maxrss starts from its parent's peak at fork and exec.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// ---- mailwire

func mailwireTransport(p *clientParams) *transport.SMTP {
	return &transport.SMTP{Addr: p.Addr, Security: transport.Plaintext, LocalName: benchHelo}
}

// runMailwireConn: one transport.Conn per connection, reused for every
// message (Conn.Send). Pipelines MAIL, RCPTs and DATA within a transaction;
// picks up cross-transaction pipelining and BDAT when the transport does.
func runMailwireConn(ctx context.Context, p *clientParams, n int, src msgSource) (int, error) {
	c, err := mailwireTransport(p).Dial(ctx)
	if err != nil {
		return 0, err
	}
	env := envelope.New(benchSender, recipients(p.Rcpts)...)
	sent := 0
	for ; sent < n; sent++ {
		r, done, err := src.open()
		if err != nil {
			c.Close()
			return sent, err
		}
		_, err = c.Send(ctx, env, r)
		done()
		if err != nil {
			c.Close()
			return sent, err
		}
	}
	return sent, c.Close()
}

// runMailwireSend: transport.SMTP.Send for every message. Today that dials a
// connection per message; once the transport pools connections (issue 6,
// part 3) the same code reuses them, so a rerun measures the pool.
func runMailwireSend(ctx context.Context, p *clientParams, n int, src msgSource) (int, error) {
	t := mailwireTransport(p)
	defer transport.CloseIdleConnections(t)
	env := envelope.New(benchSender, recipients(p.Rcpts)...)
	for sent := 0; sent < n; sent++ {
		r, done, err := src.open()
		if err != nil {
			return sent, err
		}
		_, err = t.Send(ctx, env, r)
		done()
		if err != nil {
			return sent, err
		}
	}
	return n, nil
}

// ---- mailwire's batch API: client_batch.go (Conn.SendBatch and
// SMTP.SendBatch), built unless the tag mailwire_nobatch is set.

// ---- emersion/go-smtp client

func runGoSMTP(ctx context.Context, p *clientParams, n int, src msgSource) (int, error) {
	c, err := gosmtp.Dial(p.Addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.Hello(benchHelo); err != nil {
		return 0, err
	}
	rcpts := recipients(p.Rcpts)
	for sent := 0; sent < n; sent++ {
		r, done, err := src.open()
		if err != nil {
			return sent, err
		}
		err = c.SendMail(benchSender, rcpts, r)
		done()
		if err != nil {
			return sent, err
		}
	}
	return n, c.Quit()
}

// ---- net/smtp

func runNetSMTP(ctx context.Context, p *clientParams, n int, src msgSource) (int, error) {
	c, err := netsmtp.Dial(p.Addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.Hello(benchHelo); err != nil {
		return 0, err
	}
	rcpts := recipients(p.Rcpts)
	for sent := 0; sent < n; sent++ {
		if err := c.Mail(benchSender); err != nil {
			return sent, err
		}
		for _, rc := range rcpts {
			if err := c.Rcpt(rc); err != nil {
				return sent, err
			}
		}
		w, err := c.Data()
		if err != nil {
			return sent, err
		}
		r, done, err := src.open()
		if err != nil {
			return sent, err
		}
		_, err = io.Copy(w, r)
		done()
		if err != nil {
			return sent, err
		}
		if err := w.Close(); err != nil {
			return sent, err
		}
	}
	return n, c.Quit()
}

// ---- wneessen/go-mail, with its default options (NOOP before and RSET
// after each message, quoted-printable text/plain body).

func runGoMail(ctx context.Context, p *clientParams, n int, src msgSource) (int, error) {
	host, port, err := net.SplitHostPort(p.Addr)
	if err != nil {
		return 0, err
	}
	pn, _ := strconv.Atoi(port)
	c, err := mail.NewClient(host, mail.WithPort(pn), mail.WithTLSPolicy(mail.NoTLS), mail.WithHELO(benchHelo))
	if err != nil {
		return 0, err
	}
	var body func(io.Writer) (int64, error)
	if src.large {
		body = bodyFromFile(src.mf)
	} else {
		b := src.data[src.mf.BodyOff:]
		body = func(w io.Writer) (int64, error) { k, err := w.Write(b); return int64(k), err }
	}
	// One Msg, built once and sent n times: go-mail's least costly use.
	m, err := newGoMailMsg(recipients(p.Rcpts), body)
	if err != nil {
		return 0, err
	}
	if err := c.DialWithContext(ctx); err != nil {
		return 0, err
	}
	for sent := 0; sent < n; sent++ {
		if err := c.Send(m); err != nil {
			c.Close()
			return sent, err
		}
	}
	return n, c.Close()
}

// ---- raw socket copy: the baseline for the 50 MiB message. A minimal
// lock-step exchange, then the already dot-stuffed bytes copied to the
// socket with a plain read/write loop (no sendfile), then ".".

func runRaw(ctx context.Context, p *clientParams, n int, src msgSource) (int, error) {
	nc, err := net.Dial("tcp", p.Addr)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	expect := func(code string) error {
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return err
			}
			if !strings.HasPrefix(line, code) {
				return fmt.Errorf("raw: unexpected reply %q", line)
			}
			if len(line) < 4 || line[3] != '-' {
				return nil
			}
		}
	}
	cmd := func(line, code string) error {
		if _, err := io.WriteString(nc, line+"\r\n"); err != nil {
			return err
		}
		return expect(code)
	}
	if err := expect("220"); err != nil {
		return 0, err
	}
	if err := cmd("EHLO "+benchHelo, "250"); err != nil {
		return 0, err
	}
	buf := make([]byte, 64<<10)
	for sent := 0; sent < n; sent++ {
		if err := cmd("MAIL FROM:<"+benchSender+">", "250"); err != nil {
			return sent, err
		}
		for _, rc := range recipients(p.Rcpts) {
			if err := cmd("RCPT TO:<"+rc+">", "250"); err != nil {
				return sent, err
			}
		}
		if err := cmd("DATA", "354"); err != nil {
			return sent, err
		}
		f, err := os.Open(p.Msg.Wire)
		if err != nil {
			return sent, err
		}
		for {
			k, rerr := f.Read(buf)
			if k > 0 {
				if _, werr := nc.Write(buf[:k]); werr != nil {
					f.Close()
					return sent, werr
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				f.Close()
				return sent, rerr
			}
		}
		f.Close()
		if err := cmd(".", "250"); err != nil {
			return sent, err
		}
	}
	return n, cmd("QUIT", "221")
}
