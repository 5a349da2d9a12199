package main

import (
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// proxy is a TCP proxy that delays each direction by a fixed time (so a delay
// of 5 ms gives a 10 ms round-trip time) and counts round trips.
//
// A round trip ("turn") is counted each time the client sends bytes after the
// proxy has delivered server bytes to it since the client's previous bytes:
// the number of client write bursts separated by server replies. A client that
// sends one command at a time makes one turn per command; a client that
// pipelines a whole transaction makes one turn per group. The greeting is
// server-initiated, so EHLO is the first turn and QUIT the last.
type proxy struct {
	ln     net.Listener
	target string
	delay  time.Duration

	turns  atomic.Int64
	late   atomic.Int64 // total lateness of delayed chunks, ns
	chunks atomic.Int64 // delayed chunks written
	conns  atomic.Int64
	c2s    atomic.Int64
	s2c    atomic.Int64
	active sync.WaitGroup
}

func newProxy(target string, delay time.Duration) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target, delay: delay}
	go p.serve()
	return p, nil
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) Close() error { return p.ln.Close() }

// proxyCounts are the counters of a proxy between two resets.
type proxyCounts struct {
	Turns, Conns, C2S, S2C int64
	// Late is the mean lateness of delayed chunks beyond the set delay: the
	// proxy's own scheduling delay, which a busy machine inflates.
	Late time.Duration
}

// Take waits (up to timeout) for every proxied connection to end, then
// returns the counters and resets them.
func (p *proxy) Take(timeout time.Duration) proxyCounts {
	done := make(chan struct{})
	go func() { p.active.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
	var late time.Duration
	if n := p.chunks.Swap(0); n > 0 {
		late = time.Duration(p.late.Swap(0) / n)
	} else {
		p.late.Store(0)
	}
	return proxyCounts{
		Late:  late,
		Turns: p.turns.Swap(0),
		Conns: p.conns.Swap(0),
		C2S:   p.c2s.Swap(0),
		S2C:   p.s2c.Swap(0),
	}
}

func (p *proxy) serve() {
	for {
		cc, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.active.Add(1)
		p.conns.Add(1)
		go p.handle(cc)
	}
}

func (p *proxy) handle(cc net.Conn) {
	defer p.active.Done()
	sc, err := net.Dial("tcp", p.target)
	if err != nil {
		cc.Close()
		return
	}
	var spoke atomic.Bool // server bytes reached the client since its last bytes
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		p.pipe(sc, cc, &p.c2s, func() {
			if spoke.Swap(false) {
				p.turns.Add(1)
			}
		}, nil)
	}()
	go func() {
		defer wg.Done()
		// The flag is set just before the reply is written to the client:
		// set after, it could miss a client that answers at once.
		p.pipe(cc, sc, &p.s2c, nil, func() { spoke.Store(true) })
	}()
	wg.Wait()
	cc.Close()
	sc.Close()
}

type chunk struct {
	b  []byte
	at time.Time
}

// pipe copies src to dst, each chunk delayed by p.delay from the moment it
// was read. onRead runs when a chunk is read, onDeliver just before it is
// written.
func (p *proxy) pipe(dst, src net.Conn, bytes *atomic.Int64, onRead, onDeliver func()) {
	defer func() {
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	if p.delay == 0 {
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if onRead != nil {
					onRead()
				}
				bytes.Add(int64(n))
				if onDeliver != nil {
					onDeliver()
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					src.Close()
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	q := make(chan chunk, 256) // at most 256 chunks in flight: back-pressure
	var werr atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		// time.Sleep wakes up to a millisecond late (the runtime's poller
		// waits in whole milliseconds), 10 % of a 5 ms delay; this goroutine
		// sleeps in nanosleep on its own thread instead.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		preciseSleepInit()
		for c := range q {
			if werr.Load() {
				continue
			}
			preciseSleepUntil(c.at)
			p.late.Add(int64(time.Since(c.at)))
			p.chunks.Add(1)
			if onDeliver != nil {
				onDeliver()
			}
			if _, err := dst.Write(c.b); err != nil {
				werr.Store(true)
				src.Close()
				continue
			}
		}
	}()
	for {
		buf := make([]byte, 32<<10)
		n, err := src.Read(buf)
		if n > 0 {
			if onRead != nil {
				onRead()
			}
			bytes.Add(int64(n))
			q <- chunk{b: buf[:n], at: time.Now().Add(p.delay)}
		}
		if err != nil {
			break
		}
	}
	close(q)
	<-done
}

// preciseSleepInit sets the calling thread's timer slack to 1 µs (the
// default, 50 µs, is 1 % of the delay).
func preciseSleepInit() {
	const prSetTimerslack = 29
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerslack, 1000, 0)
}

// preciseSleepUntil blocks the calling thread in nanosleep until t.
func preciseSleepUntil(t time.Time) {
	for {
		d := time.Until(t)
		if d <= 0 {
			return
		}
		ts := syscall.NsecToTimespec(d.Nanoseconds())
		syscall.Nanosleep(&ts, nil) // EINTR: loop and sleep the rest
	}
}
