package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

type report struct {
	opts      options
	h         *harness
	started   time.Time
	elapsed   time.Duration
	results   []*scenarioResult
	loadStart string
}

func (r *report) find(id string) *scenarioResult {
	for _, s := range r.results {
		if s.sc.ID == id {
			return s
		}
	}
	return nil
}

func (s *scenarioResult) client(name string) *clientSummary {
	if s == nil {
		return nil
	}
	for _, c := range s.clients {
		if c.Client == name && c.OK > 0 {
			return c
		}
	}
	return nil
}

func (r *report) markdown() string {
	var b strings.Builder
	mode := "full"
	if r.opts.quick {
		mode = "quick (1/10 of the messages: a smoke test, not the reference numbers)"
	}
	fmt.Fprintf(&b, "### Run of %s (%s mode, took %s)\n\n", r.started.UTC().Format("2006-01-02 15:04 UTC"), mode, r.elapsed.Round(time.Second))
	fmt.Fprintf(&b, "Command: `%s`\n\n", r.opts.command)
	b.WriteString(r.machine())
	b.WriteString("\n")

	for _, s := range r.results {
		sc := s.sc
		fmt.Fprintf(&b, "#### (%s) %s\n\n", sc.ID, sc.Title)
		fmt.Fprintf(&b, "Server: %s. Median of %d round(s); took %s; load average %s at its end.", s.server, sc.Rounds, s.took.Round(time.Second), s.load)
		if sc.Delay > 0 {
			fmt.Fprintf(&b, " Latency proxy: %s each way, late by %s per chunk (median).", sc.Delay, s.late.Round(10*time.Microsecond))
		}
		b.WriteString("\n\n")
		delayed := sc.Delay > 0
		b.WriteString("| client | msg/s | MiB/s | × mailwire | peak RSS | CPU/msg | server CPU/msg | allocs/msg | RT/msg |")
		if delayed {
			b.WriteString(" RTTs/msg |")
		}
		b.WriteString(" bytes checked |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|")
		if delayed {
			b.WriteString("--:|")
		}
		b.WriteString("---|\n")
		ref := s.client(refClient)
		for _, c := range s.clients {
			name := c.Client
			if name == "raw" {
				name = "raw socket copy (baseline)"
			}
			if c.OK == 0 {
				fmt.Fprintf(&b, "| %s | failed: %s | | | | | | | |", name, mdEscape(short(c.Err, 120)))
				if delayed {
					b.WriteString(" |")
				}
				fmt.Fprintf(&b, " %s |\n", mdEscape(c.Verify))
				continue
			}
			ratio := "—"
			if ref != nil && ref.MsgsPerS > 0 {
				ratio = fmt.Sprintf("%.2f", c.MsgsPerS/ref.MsgsPerS)
			}
			allocs := "—"
			if c.Allocs >= 0 {
				allocs = fmt.Sprintf("%.0f", c.Allocs)
			}
			fails := ""
			if c.OK < len(c.Runs) {
				fails = fmt.Sprintf(" (%d of %d runs failed)", len(c.Runs)-c.OK, len(c.Runs))
			}
			srv := "—"
			if c.SrvPerMsg >= 0 {
				srv = fmtDur(c.SrvPerMsg)
			}
			fmt.Fprintf(&b, "| %s%s | %s | %.2f | %s | %.1f MiB | %s | %s | %s | %s |", name, fails, fmtRate(c.MsgsPerS), c.MiBPerS, ratio,
				float64(c.RSS)/(1<<20), fmtDur(c.CPUPerMsg), srv, allocs, fmtRT(c.RTPerMsg))
			if delayed {
				fmt.Fprintf(&b, " %s |", fmtRT(c.RTTPerMsg))
			}
			fmt.Fprintf(&b, " %s |\n", mdEscape(c.Verify))
		}
		b.WriteString("\n")
	}
	b.WriteString(r.targets())
	b.WriteString("\n")
	b.WriteString(legend)
	if len(r.h.notes) > 0 {
		b.WriteString("\nNotes from this run:\n\n")
		for _, n := range r.h.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

const legend = `Columns: **msg/s** messages per second over the whole session (connect, EHLO, the messages, QUIT),
as timed by the client process itself (smtp-source: the wall time of its process); **MiB/s** message
bytes per second; **× mailwire** msg/s relative to mailwire (one reused ` + "`transport.Conn`" + `);
**peak RSS** the client process's VmHWM (smtplib with 8 connections: the largest of its 8 processes);
**CPU/msg** user+system CPU time of the client process per message; **server CPU/msg** the server
process's CPU time during the run per message (from /proc/PID/task/*/schedstat); **allocs/msg** Go heap allocations
per message in the client process (runtime.MemStats, whole session); **RT/msg** round trips per message,
counted at a proxy as client write bursts that follow a server reply (EHLO and QUIT included; loopback
scenarios: a separate pass through a counting proxy with no delay); **RTTs/msg** the time per message
divided by the 10 ms round-trip time; **bytes checked** the verification pass against a recording
go-smtp server: every message's sender, recipient count, size and SHA-256 against the canonical message.
Clients: **mailwire** one ` + "`transport.SMTP.Dial`" + ` connection per goroutine, ` + "`Conn.Send`" + ` per message;
**mailwire-send** ` + "`transport.SMTP.Send`" + ` per message (a new connection per message until the transport pools);
**go-smtp** emersion/go-smtp ` + "`Client.SendMail`" + `; **net/smtp** Mail, Rcpt, Data; **go-mail** one ` + "`Msg`" + ` sent
with ` + "`Client.Send`" + ` and the default options (NOOP before and RSET after each message);
**smtplib** ` + "`SMTP.sendmail`" + `; **smtp-source** ` + "`-d -s CONNS -m N -r RCPTS -F message`" + `.
`

// best returns the mailwire variant of a scenario that does best by better
// (a strict "is better than" on two summaries), or nil.
func (s *scenarioResult) best(better func(a, b *clientSummary) bool) *clientSummary {
	if s == nil {
		return nil
	}
	var best *clientSummary
	for _, c := range s.clients {
		if c.OK == 0 || !strings.HasPrefix(c.Client, "mailwire") {
			continue
		}
		if best == nil || better(c, best) {
			best = c
		}
	}
	return best
}

func faster(a, b *clientSummary) bool { return a.MsgsPerS > b.MsgsPerS }

func (r *report) targets() string {
	var b strings.Builder
	b.WriteString("#### Issue 6 targets in this run\n\n")
	b.WriteString("Each target is checked with the mailwire variant that does best on it (named).\n\n")
	b.WriteString("| target | measured | met |\n|---|---|---|\n")
	row := func(target, measured string, ok *bool) {
		v := "n/a"
		if ok != nil {
			v = "no"
			if *ok {
				v = "**yes**"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", target, measured, v)
	}
	pb := func(v bool) *bool { return &v }
	speedup := func(id, peer string, want float64, target string) {
		s := r.find(id)
		mw, p := s.best(faster), s.client(peer)
		if mw == nil || p == nil {
			row(target, "not measured", nil)
			return
		}
		x := mw.MsgsPerS / p.MsgsPerS
		row(target, fmt.Sprintf("%.2f× (%s %s vs %s msg/s)", x, mw.Client, fmtRate(mw.MsgsPerS), fmtRate(p.MsgsPerS)), pb(x >= want))
	}
	fewerRTTs := func(a, b *clientSummary) bool { return a.RTTPerMsg < b.RTTPerMsg }
	speedup("a", "smtp-source", 2, "(a) loopback, one connection: ≥ 2× smtp-source")
	speedup("a", "go-smtp", 3, "(a) loopback, one connection: ≥ 3× go-smtp")
	speedup("b", "go-smtp", 5, "(b) 10 recipients: ≥ 5× go-smtp")
	if mw := r.find("c").best(fewerRTTs); mw != nil {
		row("(c) 10 ms RTT, DATA: ≤ 1.1 round trips per message",
			fmt.Sprintf("%s: %.2f round trips/msg counted, %.2f RTTs/msg of time", mw.Client, mw.RTPerMsg, mw.RTTPerMsg), pb(mw.RTPerMsg <= 1.1 && mw.RTTPerMsg <= 1.1))
	} else {
		row("(c) 10 ms RTT, DATA: ≤ 1.1 round trips per message", "not measured", nil)
	}
	if mw := r.find("c-bdat").best(fewerRTTs); mw != nil {
		row("(c-bdat) 10 ms RTT, BDAT, warm connection: < 0.6 round trips per message",
			fmt.Sprintf("%s: %.2f RTTs/msg of time (%.2f write bursts/msg)", mw.Client, mw.RTTPerMsg, mw.RTPerMsg), pb(mw.RTTPerMsg < 0.6))
	} else {
		row("(c-bdat) 10 ms RTT, BDAT: < 0.6 round trips per message", "not measured", nil)
	}
	d := r.find("d")
	if mw := d.client(refClient); mw != nil {
		var worst *clientSummary
		for _, c := range d.clients {
			if c.OK > 0 && strings.HasPrefix(c.Client, "mailwire") && (worst == nil || c.RSS > worst.RSS) {
				worst = c
			}
		}
		row("(d) 50 MiB message: peak RSS < 16 MiB", fmt.Sprintf("%.1f MiB (the largest of the mailwire variants: %s)", float64(worst.RSS)/(1<<20), worst.Client), pb(worst.RSS < 16<<20))
		if raw := d.client("raw"); raw != nil {
			f := mw.MiBPerS / raw.MiBPerS
			row("(d) 50 MiB message: ≥ 80 % of a raw socket copy's throughput",
				fmt.Sprintf("%s: %.0f %% (%.0f vs %.0f MiB/s)", mw.Client, 100*f, mw.MiBPerS, raw.MiBPerS), pb(f >= 0.8))
		}
	} else {
		row("(d) 50 MiB message", "not measured", nil)
	}
	speedup("e", "smtp-source", 2, "(e) 8 connections: ≥ 2× smtp-source -s 8")
	fewerAllocs := func(a, b *clientSummary) bool { return a.Allocs >= 0 && a.Allocs < b.Allocs }
	if mw := r.find("a").best(fewerAllocs); mw != nil && mw.Allocs >= 0 {
		row("(a) allocations per message on a warm connection < 20 (here: the whole client process and session)",
			fmt.Sprintf("%s: %.0f allocs/msg, %.0f B/msg", mw.Client, mw.Allocs, mw.AllocB), pb(mw.Allocs < 20))
	}
	if r.opts.quick {
		b.WriteString("\nQuick mode: the sessions are short, so connection setup weighs more; judge the targets on a full run.\n")
	}
	return b.String()
}

func (r *report) machine() string {
	var b strings.Builder
	model := "unknown"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	kernel := strings.TrimSpace(cmdOut("uname", "-r"))
	mem := ""
	if f, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(f), "\n")
		mem = strings.Join(strings.Fields(line)[1:], " ")
	}
	fmt.Fprintf(&b, "Machine: %d CPUs (`nproc`), %s, %s memory, Linux %s, %s %s/%s.\n",
		runtime.NumCPU(), model, mem, kernel, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	var peers []string
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			switch d.Path {
			case "github.com/emersion/go-smtp", "github.com/wneessen/go-mail":
				peers = append(peers, d.Path+" "+d.Version)
			}
		}
	}
	if v := strings.TrimSpace(cmdOut("postconf", "-d", "-h", "mail_version")); v != "" {
		peers = append(peers, "Postfix "+v+" (smtp-sink, smtp-source)")
	}
	if r.h.python != "" {
		peers = append(peers, strings.TrimSpace(cmdOut(r.h.python, "--version"))+" smtplib")
	}
	fmt.Fprintf(&b, "Peers: %s.\n", strings.Join(peers, ", "))
	if r.opts.src != "" {
		fmt.Fprintf(&b, "mailwire: %s.\n", r.opts.src)
	}
	fmt.Fprintf(&b, "Load average (1, 5, 15 min) at the start: %s (other work on the machine shows here; the clients are interleaved so that it spreads over all of them).\n", r.loadStart)
	return b.String()
}

func cmdOut(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return ""
	}
	return string(out)
}

func fmtRate(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
}

func short(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.ReplaceAll(s, "\n", " ")
}
