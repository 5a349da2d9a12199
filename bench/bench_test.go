package main

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// Go benchmarks of the in-process clients over one warm connection, for
// allocation counts (go test -bench . -benchmem). They send to Postfix's
// smtp-sink when it is installed, so that the allocations are the client's
// alone; otherwise to an in-process go-smtp server, whose allocations then
// count too. The program (bench run) is the real comparison; these are a
// quick look at one client at a time:
//
//	cd bench && go test -run '^$' -bench . -benchmem

var benchAddr string

func TestMain(m *testing.M) {
	var stop func()
	if path := findTool("smtp-sink", "/usr/sbin", "/usr/local/sbin"); path != "" {
		if p, err := startSmtpSink(path); err == nil {
			benchAddr, stop = p.Addr, p.Stop
		}
	}
	if benchAddr == "" {
		_, addr, closeFn, err := startRecorder()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		benchAddr, stop = addr, closeFn
		fmt.Fprintln(os.Stderr, "smtp-sink not installed: benchmarking against an in-process go-smtp server (its allocations count too)")
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

func benchMessage(b *testing.B) msgSource {
	mf, err := buildMessage(b.TempDir(), "small", 1024)
	if err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile(mf.EML)
	if err != nil {
		b.Fatal(err)
	}
	return msgSource{data: data, mf: mf}
}

func benchClients(b *testing.B, rcpts int) {
	src := benchMessage(b)
	for _, name := range []string{"mailwire", "mailwire-batch", "go-smtp", "net/smtp", "go-mail"} {
		if goClients[name] == nil {
			continue // mailwire-batch without the batch API
		}
		b.Run(name, func(b *testing.B) {
			p := &clientParams{Client: name, Addr: benchAddr, Rcpts: rcpts, Conns: 1, Msg: src.mf}
			b.ReportAllocs()
			b.SetBytes(src.mf.Size)
			// One session of b.N messages: dial, EHLO and QUIT are spread
			// over b.N and vanish for large b.N.
			n, err := goClients[name](context.Background(), p, b.N, src)
			if err != nil {
				b.Fatalf("%s: sent %d of %d: %v", name, n, b.N, err)
			}
		})
	}
}

// BenchmarkSend1KiB: 1 KiB messages, one recipient, one connection.
func BenchmarkSend1KiB(b *testing.B) { benchClients(b, 1) }

// BenchmarkSend1KiB10Rcpts: 1 KiB messages, ten recipients, one connection.
func BenchmarkSend1KiB10Rcpts(b *testing.B) { benchClients(b, 10) }

// TestMessageForms checks the canonical message: go-mail renders it (checked
// by buildMessage), its size is exact, and its wire form is dot-stuffed.
func TestMessageForms(t *testing.T) {
	for _, size := range []int64{1024, 5000, 1 << 20} {
		mf, err := buildMessage(t.TempDir(), "m", size)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		eml, _ := os.ReadFile(mf.EML)
		wire, _ := os.ReadFile(mf.Wire)
		lf, _ := os.ReadFile(mf.LF)
		if int64(len(eml)) != size {
			t.Errorf("size %d: message has %d bytes", size, len(eml))
		}
		if len(wire) != len(eml)+1 {
			t.Errorf("size %d: wire form has %d bytes, want %d (one stuffed dot)", size, len(wire), len(eml)+1)
		}
		if len(lf) >= len(eml) {
			t.Errorf("size %d: LF form is not shorter", size)
		}
	}
}

// TestProxyCountsRoundTrips checks the proxy's round-trip count: a client
// that waits for each reply makes MAIL, RCPT, DATA and the message one turn
// each, plus EHLO and QUIT; with and without delay.
func TestProxyCountsRoundTrips(t *testing.T) {
	_, addr, stop, err := startRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	mf, err := buildMessage(t.TempDir(), "small", 1024)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(mf.EML)
	src := msgSource{data: data, mf: mf}
	for _, delay := range []time.Duration{0, 2 * time.Millisecond} {
		px, err := newProxy(addr, delay)
		if err != nil {
			t.Fatal(err)
		}
		const n = 10
		for _, c := range []struct {
			name  string
			rcpts int
			want  int64
		}{
			{"net/smtp", 1, 4*n + 2},
			{"net/smtp", 3, 6*n + 2},
			{"go-smtp", 2, 5*n + 2},
		} {
			p := &clientParams{Client: c.name, Addr: px.Addr(), Rcpts: c.rcpts, Conns: 1, Msg: mf}
			if k, err := goClients[c.name](context.Background(), p, n, src); err != nil || k != n {
				t.Fatalf("%s: sent %d: %v", c.name, k, err)
			}
			got := px.Take(5 * time.Second)
			if got.Turns != c.want || got.Conns != 1 {
				t.Errorf("delay %v, %s with %d recipients: %d turns on %d connections, want %d on 1", delay, c.name, c.rcpts, got.Turns, got.Conns, c.want)
			}
		}
		px.Close()
	}
}
