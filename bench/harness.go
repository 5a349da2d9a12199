package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// allClients, in table order. "mailwire" is the reference for the ratios.
// client_batch.go inserts "mailwire-batch" and "mailwire-pool-batch" after
// "mailwire-send" when the mailwire source has the batch API.
var allClients = []string{"mailwire", "mailwire-send", "go-smtp", "net/smtp", "go-mail", "smtplib", "smtp-source"}

const refClient = "mailwire"

// scenario is one row group of the benchmark.
type scenario struct {
	ID      string
	Title   string
	N       int // messages per run
	Rcpts   int
	Conns   int
	Large   bool          // the large message, streamed from its file
	Delay   time.Duration // each way, through the latency proxy; 0: direct
	Server  string        // "smtp-sink" or "go-smtp"
	Clients []string      // nil: every available client
	Rounds  int
	VerifyN int // messages in the verification pass
	RTN     int // messages in the round-trip counting pass (direct scenarios)
}

func (sc *scenario) msg(h *harness) *msgFiles {
	if sc.Large {
		return h.large
	}
	return h.small
}

// scenarios returns the benchmark's scenarios, scaled down by div (10 in
// quick mode).
func scenarios(div, rounds, rttRounds int, largeSize int64) []*scenario {
	n := func(x int) int { return max(x/div, 1) }
	mib := float64(largeSize) / (1 << 20)
	// The CHUNKING scenarios: every mailwire variant, and peers as yardsticks.
	mailwires := slices.DeleteFunc(slices.Clone(allClients), func(c string) bool { return !strings.HasPrefix(c, "mailwire") })
	list := []*scenario{
		{ID: "a", Title: fmt.Sprintf("%d messages of 1 KiB, 1 recipient, one connection, loopback", n(2000)),
			N: n(2000), Rcpts: 1, Conns: 1, Server: "smtp-sink", Rounds: rounds, VerifyN: 3, RTN: min(n(2000), 200)},
		{ID: "b", Title: fmt.Sprintf("%d messages of 1 KiB, 10 recipients, one connection, loopback", n(1000)),
			N: n(1000), Rcpts: 10, Conns: 1, Server: "smtp-sink", Rounds: rounds, VerifyN: 3, RTN: min(n(1000), 100)},
		{ID: "c", Title: fmt.Sprintf("%d messages of 1 KiB, 5 recipients, one connection, 10 ms RTT", n(200)),
			N: n(200), Rcpts: 5, Conns: 1, Delay: 5 * time.Millisecond, Server: "smtp-sink", Rounds: rttRounds, VerifyN: 3},
		{ID: "d", Title: fmt.Sprintf("one %.0f MiB message, 1 recipient, loopback", mib),
			N: 1, Rcpts: 1, Conns: 1, Large: true, Server: "smtp-sink", Rounds: rounds, VerifyN: 1, RTN: 1,
			Clients: append([]string{"raw"}, allClients...)},
		{ID: "e", Title: fmt.Sprintf("%d messages of 1 KiB, 1 recipient, 8 connections, loopback", n(4000)),
			N: n(4000), Rcpts: 1, Conns: 8, Server: "smtp-sink", Rounds: rounds, VerifyN: 16, RTN: min(n(4000), 400)},
		// CHUNKING-capable server: mailwire uses BDAT here once the
		// transport does (issue 6, part 2); go-smtp's client is the yardstick.
		{ID: "a-bdat", Title: fmt.Sprintf("as (a), %d messages, against go-smtp's server (offers CHUNKING)", n(2000)),
			N: n(2000), Rcpts: 1, Conns: 1, Server: "go-smtp", Rounds: rounds, VerifyN: 3, RTN: min(n(2000), 200),
			Clients: append(slices.Clone(mailwires), "go-smtp", "net/smtp")},
		{ID: "c-bdat", Title: fmt.Sprintf("as (c), %d messages, 10 ms RTT, against go-smtp's server (offers CHUNKING)", n(200)),
			N: n(200), Rcpts: 5, Conns: 1, Delay: 5 * time.Millisecond, Server: "go-smtp", Rounds: rttRounds, VerifyN: 3,
			Clients: append(slices.Clone(mailwires), "go-smtp")},
	}
	return list
}

type harness struct {
	self        string
	workdir     string
	python      string
	smtplibPath string
	smtpSource  string
	smtpSink    string
	timeTool    string // GNU time, for smtp-source's peak RSS
	timeout     time.Duration
	small       *msgFiles
	large       *msgFiles

	servers  map[string]*serverProc // "smtp-sink", "go-smtp"
	proxies  map[string]*proxy
	recorder *serverBackend
	recAddr  string
	recStop  func()
	notes    []string
	mu       sync.Mutex
}

// runResult is one client run.
type runResult struct {
	Client  string
	Sent    int
	Elapsed time.Duration // the client's own measure (process wall time for smtp-source)
	Wall    time.Duration
	MaxRSS  int64 // bytes
	CPU     time.Duration
	Allocs  float64 // Go heap allocations per message; -1: not a Go client
	AllocB  float64
	Counts  proxyCounts
	SrvCPU  time.Duration // the server process's CPU time during the run; -1: unknown
	Err     string
}

func (h *harness) available(client string) bool {
	switch client {
	case "smtplib":
		return h.python != ""
	case "smtp-source":
		return h.smtpSource != ""
	}
	_, ok := goClients[client]
	return ok
}

func (h *harness) clientsOf(sc *scenario) []string {
	list := sc.Clients
	if list == nil {
		list = allClients
	}
	var out []string
	for _, c := range list {
		if h.available(c) {
			out = append(out, c)
		}
	}
	return out
}

// serverAddr returns the address the clients of sc connect to, through a
// proxy: a counting one (no delay) when count is set, the latency proxy for
// a scenario with a delay.
func (h *harness) serverAddr(sc *scenario, count bool) (string, *proxy, error) {
	srv := h.servers[sc.Server]
	if srv == nil {
		return "", nil, fmt.Errorf("server %s is not running", sc.Server)
	}
	if sc.Delay == 0 && !count {
		return srv.Addr, nil, nil
	}
	key := sc.Server + "/" + sc.Delay.String()
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.proxies[key]
	if p == nil {
		var err error
		if p, err = newProxy(srv.Addr, sc.Delay); err != nil {
			return "", nil, err
		}
		h.proxies[key] = p
	}
	return p.Addr(), p, nil
}

// runOnce runs one client in its own process and reads its rusage.
func (h *harness) runOnce(client string, sc *scenario, addr string, n int, px *proxy) runResult {
	srv := h.servers[sc.Server]
	if addr == h.recAddr {
		srv = nil // the in-process recorder
	}
	srvCPU0 := srv.CPU()
	rr := h.runClient(client, sc, addr, n, px)
	rr.SrvCPU = -1
	if srvCPU0 >= 0 {
		if c := srv.CPU(); c >= 0 {
			rr.SrvCPU = c - srvCPU0
		}
	}
	return rr
}

func (h *harness) runClient(client string, sc *scenario, addr string, n int, px *proxy) runResult {
	p := &clientParams{Client: client, Addr: addr, N: n, Rcpts: sc.Rcpts, Conns: min(sc.Conns, n), Msg: sc.msg(h), Large: sc.Large}
	var cmd *exec.Cmd
	rssFile := ""
	switch client {
	case "smtplib":
		cmd = h.smtplibCommand(p)
	case "smtp-source":
		cmd = h.smtpSourceCommand(p)
		if h.timeTool != "" {
			// GNU time forks smtp-source from a small process and reports
			// its peak RSS (ru_maxrss); polling cannot see a process that
			// ends within a few milliseconds.
			rssFile = filepath.Join(h.workdir, "smtp-source.rss")
			os.Remove(rssFile)
			cmd = exec.Command(h.timeTool, append([]string{"-f", "%M", "-o", rssFile}, cmd.Args...)...)
		}
	default:
		cmd = exec.Command(h.self, "client",
			"-client", client, "-addr", addr,
			"-n", strconv.Itoa(n), "-rcpts", strconv.Itoa(p.Rcpts), "-conns", strconv.Itoa(p.Conns),
			"-eml", p.Msg.EML, "-wire", p.Msg.Wire, "-bodyoff", strconv.FormatInt(p.Msg.BodyOff, 10),
			"-large="+strconv.FormatBool(p.Large))
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	rr := runResult{Client: client, Allocs: -1, AllocB: -1}
	if px != nil {
		px.Take(time.Second) // start from zero
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		rr.Err = err.Error()
		return rr
	}
	timer := time.AfterFunc(h.timeout, func() { cmd.Process.Kill() })
	// Poll the child's peak RSS while it runs (smtp-source cannot report
	// its own); the Go clients and smtplib also report theirs at the end.
	var polled atomic.Int64
	stop := make(chan struct{})
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		pid := cmd.Process.Pid
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			if v := vmHWM(pid); v > polled.Load() {
				polled.Store(v)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	werr := cmd.Wait()
	close(stop)
	<-pollDone
	timer.Stop()
	rr.MaxRSS = polled.Load()
	rr.Wall = time.Since(start)
	if px != nil {
		rr.Counts = px.Take(5 * time.Second)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru != nil {
		// CPU time only: ru_maxrss is inherited from this process at exec.
		rr.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	errTail := func() string {
		s := strings.TrimSpace(stderr.String())
		if len(s) > 300 {
			s = "..." + s[len(s)-300:]
		}
		return s
	}
	if client == "smtp-source" {
		if rssFile != "" {
			rr.MaxRSS = 0 // the poll saw GNU time, not smtp-source
			if b, err := os.ReadFile(rssFile); err == nil {
				f := strings.Fields(string(b))
				if len(f) > 0 {
					kb, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
					rr.MaxRSS = kb * 1024
				}
			}
		}
		rr.Elapsed = rr.Wall
		if werr == nil {
			rr.Sent = n
		} else {
			rr.Err = fmt.Sprintf("%v: %s", werr, errTail())
		}
		return rr
	}
	var res clientResult
	line := bytes.TrimSpace(stdout.Bytes())
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if err := json.Unmarshal(line, &res); err != nil {
		rr.Err = fmt.Sprintf("no result (%v): %s", werr, errTail())
		return rr
	}
	rr.Sent = res.Sent
	rr.MaxRSS = max(rr.MaxRSS, res.PeakRSS)
	rr.Elapsed = time.Duration(res.ElapsedNS)
	if client != "smtplib" {
		rr.Allocs, rr.AllocB = res.Allocs, res.AllocB
	}
	rr.Err = res.Err
	if rr.Err == "" && werr != nil {
		rr.Err = fmt.Sprintf("%v: %s", werr, errTail())
	}
	if rr.Err == "" && rr.Sent != n {
		rr.Err = fmt.Sprintf("sent %d of %d", rr.Sent, n)
	}
	return rr
}

// verify sends VerifyN messages with each client to the recording go-smtp
// server and checks every message's sender, recipient count, size and
// SHA-256 against the canonical message.
func (h *harness) verify(sc *scenario, client string) string {
	h.recorder.Take()
	n := sc.VerifyN
	rr := h.runOnce(client, sc, h.recAddr, n, nil)
	// The server records a message when its data is read; the client may
	// have returned a moment earlier.
	var recs []record
	deadline := time.Now().Add(3 * time.Second)
	for {
		recs = append(recs, h.recorder.Take()...)
		if len(recs) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rr.Err != "" {
		return "FAILED: " + rr.Err
	}
	mf := sc.msg(h)
	size, sum, extra := mf.Size, mf.SHA256, ""
	if client == "smtp-source" {
		size, sum, extra = mf.Size+2, mf.SHA256CRLF, ", plus the CRLF smtp-source always appends"
	}
	if len(recs) != n {
		return fmt.Sprintf("FAILED: server received %d of %d messages", len(recs), n)
	}
	for _, r := range recs {
		switch {
		case r.Err != "":
			return "FAILED: " + r.Err
		case r.From != benchSender:
			return fmt.Sprintf("FAILED: sender %q", r.From)
		case r.Rcpts != sc.Rcpts:
			return fmt.Sprintf("FAILED: %d recipients, want %d", r.Rcpts, sc.Rcpts)
		case r.Size != size || r.SHA256 != sum:
			return fmt.Sprintf("FAILED: %d bytes differing from the %d-byte message%s", r.Size, mf.Size, extra)
		}
	}
	return fmt.Sprintf("ok (%d/%d sha256%s)", len(recs), n, extra)
}

type options struct {
	quick      bool
	rounds     int
	rttRounds  int
	only       string
	clients    string
	out        string
	updateDoc  string
	largeMiB   int
	timeout    time.Duration
	skipVerify bool
	command    string
	src        string
}

func runMain(args []string) int {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var o options
	fs.BoolVar(&o.quick, "quick", false, "smoke mode: 1/10 of the messages, a 5 MiB large message, one round")
	fs.IntVar(&o.rounds, "rounds", 0, "rounds of the loopback scenarios (default 5, quick 1)")
	fs.IntVar(&o.rttRounds, "rtt-rounds", 0, "rounds of the 10 ms RTT scenarios (default 2, quick 1)")
	fs.StringVar(&o.only, "scenarios", "", "comma-separated scenario IDs (a,b,c,d,e,a-bdat,c-bdat); default all")
	fs.StringVar(&o.clients, "clients", "", "comma-separated clients; default all available")
	fs.StringVar(&o.out, "out", "results/latest.md", "markdown file for the results")
	fs.StringVar(&o.updateDoc, "update-doc", "", "rewrite the generated part of this file (docs/performance.md)")
	fs.IntVar(&o.largeMiB, "large-mib", 0, "size of the large message in MiB (default 50, quick 5)")
	fs.DurationVar(&o.timeout, "timeout", 3*time.Minute, "limit for one client run")
	fs.BoolVar(&o.skipVerify, "skip-verify", false, "skip the byte verification pass")
	fs.StringVar(&o.command, "command", "", "the command line to print as the way to reproduce (set by run.sh)")
	fs.StringVar(&o.src, "mailwire-src", "", "which mailwire source was built (set by run.sh)")
	fs.Parse(args)
	div := 1
	if o.quick {
		div = 10
	}
	if o.rounds == 0 {
		o.rounds = 5
		if o.quick {
			o.rounds = 1
		}
	}
	if o.rttRounds == 0 {
		o.rttRounds = 2
		if o.quick {
			o.rttRounds = 1
		}
	}
	if o.largeMiB == 0 {
		o.largeMiB = 50
		if o.quick {
			o.largeMiB = 5
		}
	}
	if o.command == "" {
		o.command = "bench " + strings.Join(args, " ")
	}

	h, err := newHarness(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		h.close()
		os.Exit(130)
	}()
	defer h.close()

	list := scenarios(div, o.rounds, o.rttRounds, int64(o.largeMiB)<<20)
	if o.only != "" {
		want := strings.Split(o.only, ",")
		list = slices.DeleteFunc(list, func(sc *scenario) bool { return !slices.Contains(want, sc.ID) })
	}
	if o.clients != "" {
		want := strings.Split(o.clients, ",")
		for _, sc := range list {
			cl := sc.Clients
			if cl == nil {
				cl = allClients
			}
			sc.Clients = slices.DeleteFunc(slices.Clone(cl), func(c string) bool { return !slices.Contains(want, c) })
		}
	}
	start := time.Now()
	rep := &report{opts: o, started: start, h: h, loadStart: loadAvg()}
	for _, sc := range list {
		if h.servers[sc.Server] == nil {
			h.note("scenario (%s) skipped: %s is not available", sc.ID, sc.Server)
			continue
		}
		rep.results = append(rep.results, h.runScenario(sc, o))
	}
	rep.elapsed = time.Since(start)
	md := rep.markdown()
	fmt.Println(md)
	if o.out != "" {
		os.MkdirAll(filepath.Dir(o.out), 0o755)
		if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "bench: results written to %s\n", o.out)
	}
	if o.updateDoc != "" {
		if err := updateDoc(o.updateDoc, md); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "bench: %s updated\n", o.updateDoc)
	}
	return 0
}

func newHarness(o options) (*harness, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	h := &harness{self: self, timeout: o.timeout, servers: map[string]*serverProc{}, proxies: map[string]*proxy{}}
	if h.workdir, err = os.MkdirTemp("", "mailwire-bench-"); err != nil {
		return nil, err
	}
	sbin := []string{"/usr/sbin", "/usr/local/sbin", "/sbin"}
	h.smtpSink = findTool("smtp-sink", sbin...)
	h.smtpSource = findTool("smtp-source", sbin...)
	h.python = findPython()
	if exec.Command("/usr/bin/time", "-f", "%M", "true").Run() == nil {
		h.timeTool = "/usr/bin/time"
	}
	if h.python != "" {
		h.smtplibPath = filepath.Join(h.workdir, "smtplib_client.py")
		if err := os.WriteFile(h.smtplibPath, smtplibScript, 0o644); err != nil {
			return nil, err
		}
	} else {
		h.note("Python's smtplib skipped: no python3 with smtplib found")
	}
	if h.smtpSource == "" {
		h.note("Postfix's smtp-source skipped: not installed (run.sh installs Debian's postfix)")
	}
	progress("building messages in %s", h.workdir)
	if h.small, err = buildMessage(h.workdir, "small", 1024); err != nil {
		return nil, fmt.Errorf("building the 1 KiB message: %w", err)
	}
	if h.large, err = buildMessage(h.workdir, "large", int64(o.largeMiB)<<20); err != nil {
		return nil, fmt.Errorf("building the large message: %w", err)
	}
	if h.smtpSink != "" {
		p, err := startSmtpSink(h.smtpSink)
		if err != nil {
			h.close()
			return nil, fmt.Errorf("starting smtp-sink: %w", err)
		}
		h.servers["smtp-sink"] = p
		progress("smtp-sink listening on %s (pid %d)", p.Addr, p.cmd.Process.Pid)
	} else {
		h.note("smtp-sink is not installed: the smtp-sink scenarios ran against go-smtp's server instead")
	}
	p, err := startGoSMTPProcess(self)
	if err != nil {
		h.close()
		return nil, fmt.Errorf("starting go-smtp server: %w", err)
	}
	h.servers["go-smtp"] = p
	if h.servers["smtp-sink"] == nil {
		h.servers["smtp-sink"] = p
	}
	progress("go-smtp server listening on %s (pid %d)", p.Addr, p.cmd.Process.Pid)
	if h.recorder, h.recAddr, h.recStop, err = startRecorder(); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

func (h *harness) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	h.notes = append(h.notes, s)
	progress("note: %s", s)
}

func (h *harness) close() {
	for _, p := range h.proxies {
		p.Close()
	}
	stopped := map[*serverProc]bool{}
	for _, p := range h.servers {
		if !stopped[p] {
			p.Stop()
			stopped[p] = true
		}
	}
	h.servers = map[string]*serverProc{}
	if h.recStop != nil {
		h.recStop()
		h.recStop = nil
	}
	if h.workdir != "" {
		os.RemoveAll(h.workdir)
		h.workdir = ""
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// clientSummary aggregates one client's runs of one scenario.
type clientSummary struct {
	Client    string
	Runs      []runResult
	OK        int     // successful measured runs
	MsgsPerS  float64 // medians over the successful runs
	MiBPerS   float64
	RSS       int64
	CPUPerMsg time.Duration
	SrvPerMsg time.Duration // -1: unknown
	Allocs    float64
	AllocB    float64
	RTPerMsg  float64 // -1: not measured
	RTTPerMsg float64 // elapsed per message in RTTs (delayed scenarios), -1 otherwise
	Verify    string
	Err       string
}

type scenarioResult struct {
	sc      *scenario
	server  string
	clients []*clientSummary
	took    time.Duration
	load    string // load averages at the scenario's end
	late    time.Duration
}

func (h *harness) runScenario(sc *scenario, o options) *scenarioResult {
	t0 := time.Now()
	clients := h.clientsOf(sc)
	res := &scenarioResult{sc: sc, server: h.servers[sc.Server].Name}
	byName := map[string]*clientSummary{}
	for _, c := range clients {
		cs := &clientSummary{Client: c, RTPerMsg: -1, RTTPerMsg: -1, Allocs: -1, AllocB: -1, SrvPerMsg: -1}
		byName[c] = cs
		res.clients = append(res.clients, cs)
	}
	progress("scenario (%s): %s; server %s; clients %s", sc.ID, sc.Title, res.server, strings.Join(clients, ", "))

	// 1. Verification: the same bytes from every client.
	for _, c := range clients {
		if o.skipVerify {
			byName[c].Verify = "skipped"
			continue
		}
		byName[c].Verify = h.verify(sc, c)
		progress("  verify %-13s %s", c, byName[c].Verify)
	}

	// 2. Round trips, counted at a proxy with no delay (also a warm-up).
	if sc.Delay == 0 {
		addr, px, err := h.serverAddr(sc, true)
		for _, c := range clients {
			if err != nil {
				break
			}
			rr := h.runOnce(c, sc, addr, sc.RTN, px)
			if rr.Err == "" && rr.Sent > 0 {
				byName[c].RTPerMsg = float64(rr.Counts.Turns) / float64(rr.Sent)
			}
			progress("  round trips %-13s %s", c, fmtRT(byName[c].RTPerMsg))
		}
	}

	// 3. Measured rounds, the clients interleaved, their order rotated.
	addr, px, err := h.serverAddr(sc, false)
	if err != nil {
		for _, cs := range res.clients {
			cs.Err = err.Error()
		}
		return res
	}
	for r := 0; r < sc.Rounds; r++ {
		order := append(slices.Clone(clients[r%len(clients):]), clients[:r%len(clients)]...)
		for _, c := range order {
			rr := h.runOnce(c, sc, addr, sc.N, px)
			cs := byName[c]
			cs.Runs = append(cs.Runs, rr)
			if rr.Err != "" {
				progress("  round %d %-13s FAILED: %s", r+1, c, rr.Err)
				continue
			}
			progress("  round %d %-13s %9.1f msg/s %8.2f MiB/s  rss %6.1f MiB%s", r+1, c,
				float64(rr.Sent)/rr.Elapsed.Seconds(), float64(rr.Sent)*float64(sc.msg(h).Size)/rr.Elapsed.Seconds()/(1<<20),
				float64(rr.MaxRSS)/(1<<20), rtNote(rr, sc))
		}
	}
	size := float64(sc.msg(h).Size)
	var lates []float64
	defer func() { res.late = time.Duration(median(lates)) }()
	for _, cs := range res.clients {
		var rate, rss, cpu, srvCPU, allocs, allocB, rt, rtt []float64
		for _, rr := range cs.Runs {
			if rr.Err != "" || rr.Sent == 0 {
				if cs.Err == "" {
					cs.Err = rr.Err
				}
				continue
			}
			cs.OK++
			rate = append(rate, float64(rr.Sent)/rr.Elapsed.Seconds())
			rss = append(rss, float64(rr.MaxRSS))
			cpu = append(cpu, float64(rr.CPU)/float64(rr.Sent))
			if rr.SrvCPU >= 0 {
				srvCPU = append(srvCPU, float64(rr.SrvCPU)/float64(rr.Sent))
			}
			if rr.Allocs >= 0 {
				allocs = append(allocs, rr.Allocs)
				allocB = append(allocB, rr.AllocB)
			}
			if sc.Delay > 0 {
				lates = append(lates, float64(rr.Counts.Late))
				rt = append(rt, float64(rr.Counts.Turns)/float64(rr.Sent))
				rtt = append(rtt, rr.Elapsed.Seconds()/float64(rr.Sent)/(2*sc.Delay).Seconds())
			}
		}
		if cs.OK == 0 {
			continue
		}
		cs.MsgsPerS = median(rate)
		cs.MiBPerS = cs.MsgsPerS * size / (1 << 20)
		cs.RSS = int64(median(rss))
		cs.CPUPerMsg = time.Duration(median(cpu))
		if len(srvCPU) > 0 {
			cs.SrvPerMsg = time.Duration(median(srvCPU))
		}
		if len(allocs) > 0 {
			cs.Allocs, cs.AllocB = median(allocs), median(allocB)
		}
		if sc.Delay > 0 {
			cs.RTPerMsg, cs.RTTPerMsg = median(rt), median(rtt)
		}
	}
	res.took = time.Since(t0)
	res.load = loadAvg()
	progress("scenario (%s) took %s", sc.ID, res.took.Round(time.Second))
	return res
}

// loadAvg returns the 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func rtNote(rr runResult, sc *scenario) string {
	if sc.Delay == 0 || rr.Sent == 0 {
		return ""
	}
	return fmt.Sprintf("  %.2f turns/msg, %.2f RTTs/msg, proxy late by %s per chunk", float64(rr.Counts.Turns)/float64(rr.Sent),
		rr.Elapsed.Seconds()/float64(rr.Sent)/(2*sc.Delay).Seconds(), rr.Counts.Late.Round(10*time.Microsecond))
}

func fmtRT(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", v)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// updateDoc replaces the text between the markers in the document.
func updateDoc(path, md string) error {
	const begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		return errors.New(path + " has no " + begin + " ... " + end + " markers")
	}
	s = s[:i+len(begin)] + "\n" + md + "\n" + s[j:]
	return os.WriteFile(path, []byte(s), 0o644)
}

var _ = io.Discard
