package dialer_test

import (
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
)

// socksServer is a minimal SOCKS5 server (RFC 1928, RFC 1929) for tests: it
// speaks the method negotiation, optional user/password authentication and
// CONNECT, then relays bytes. It listens on a real loopback TCP port.
type socksServer struct {
	// User and Password, if User is not empty, are the only credentials
	// accepted; otherwise only "no authentication" is offered.
	User, Password string
	// Stall makes the server read the client's greeting and then never
	// answer, like a proxy that has hung.
	Stall bool
	// Targets maps a requested destination "host:port" to the real address
	// to connect to; destinations not listed are dialed as they are.
	Targets map[string]string

	ln      net.Listener
	greeted chan struct{} // receives a value for each greeting read

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	requests []string // destinations requested, "host:port"
	sources  []string // client addresses as the proxy saw them
	authOK   []string // users that authenticated
	wg       sync.WaitGroup
}

func newSOCKSServer(t *testing.T, configure func(*socksServer)) *socksServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &socksServer{ln: ln, greeted: make(chan struct{}, 16), conns: map[net.Conn]struct{}{}}
	if configure != nil {
		configure(s)
	}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.close)
	return s
}

func (s *socksServer) addr() string { return s.ln.Addr().String() }

func (s *socksServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.sources = append(s.sources, c.RemoteAddr().String())
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.forget(c)
			s.handle(c)
		}()
	}
}

func (s *socksServer) forget(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *socksServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *socksServer) snapshot() (requests, sources, users []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...), append([]string(nil), s.sources...), append([]string(nil), s.authOK...)
}

func (s *socksServer) handle(c net.Conn) {
	// Greeting: VER NMETHODS METHODS...
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil || hdr[0] != 5 {
		return
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(c, methods); err != nil {
		return
	}
	s.greeted <- struct{}{}
	if s.Stall {
		io.Copy(io.Discard, c) // until the client or close() hangs up
		return
	}

	want := byte(0x00)
	if s.User != "" {
		want = 0x02
	}
	offered := false
	for _, m := range methods {
		if m == want {
			offered = true
		}
	}
	if !offered {
		c.Write([]byte{5, 0xff})
		return
	}
	if _, err := c.Write([]byte{5, want}); err != nil {
		return
	}
	if want == 0x02 {
		user, pass, ok := readUserPass(c)
		if !ok {
			return
		}
		if user != s.User || pass != s.Password {
			c.Write([]byte{1, 1})
			return
		}
		s.mu.Lock()
		s.authOK = append(s.authOK, user)
		s.mu.Unlock()
		if _, err := c.Write([]byte{1, 0}); err != nil {
			return
		}
	}

	// Request: VER CMD RSV ATYP DST.ADDR DST.PORT
	var req [4]byte
	if _, err := io.ReadFull(c, req[:]); err != nil || req[0] != 5 {
		return
	}
	var host string
	switch req[3] {
	case 1, 4:
		ip := make(net.IP, 4)
		if req[3] == 4 {
			ip = make(net.IP, 16)
		}
		if _, err := io.ReadFull(c, ip); err != nil {
			return
		}
		host = ip.String()
	case 3:
		var n [1]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return
		}
		name := make([]byte, n[0])
		if _, err := io.ReadFull(c, name); err != nil {
			return
		}
		host = string(name)
	default:
		reply(c, 8)
		return
	}
	var port [2]byte
	if _, err := io.ReadFull(c, port[:]); err != nil {
		return
	}
	dest := net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port[:]))))
	s.mu.Lock()
	s.requests = append(s.requests, dest)
	s.mu.Unlock()
	if req[1] != 1 { // only CONNECT
		reply(c, 7)
		return
	}
	target := dest
	if t, ok := s.Targets[dest]; ok {
		target = t
	}
	up, err := net.Dial("tcp", target)
	if err != nil {
		reply(c, 5)
		return
	}
	s.mu.Lock()
	s.conns[up] = struct{}{}
	s.mu.Unlock()
	defer s.forget(up)
	if err := reply(c, 0); err != nil {
		return
	}
	relay(c, up)
}

func readUserPass(c net.Conn) (user, pass string, ok bool) {
	var b [2]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 1 {
		return "", "", false
	}
	u := make([]byte, b[1])
	if _, err := io.ReadFull(c, u); err != nil {
		return "", "", false
	}
	if _, err := io.ReadFull(c, b[:1]); err != nil {
		return "", "", false
	}
	p := make([]byte, b[0])
	if _, err := io.ReadFull(c, p); err != nil {
		return "", "", false
	}
	return string(u), string(p), true
}

func reply(c net.Conn, status byte) error {
	_, err := c.Write([]byte{5, status, 0, 1, 0, 0, 0, 0, 0, 0})
	return err
}

// relay copies both ways until either side is done, then closes both.
func relay(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	a.Close()
	b.Close()
	<-done
}

// lineServer accepts connections on loopback and writes greeting followed by
// the remote address it saw, then echoes one line back. It records each
// client's address.
type lineServer struct {
	ln      net.Listener
	mu      sync.Mutex
	remotes []net.Addr
	wg      sync.WaitGroup
}

func newLineServer(t *testing.T, network, address string) *lineServer {
	t.Helper()
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	s := &lineServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.remotes = append(s.remotes, c.RemoteAddr())
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				if _, err := io.WriteString(c, "220 backend ready\r\n"); err != nil {
					return
				}
				buf := make([]byte, 512)
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				c.Write(buf[:n])
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *lineServer) seen() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]net.Addr(nil), s.remotes...)
}

// talk reads the backend's greeting from c, sends ping and reads it back.
func talk(t *testing.T, c net.Conn) {
	t.Helper()
	greeting := make([]byte, len("220 backend ready\r\n"))
	if _, err := io.ReadFull(c, greeting); err != nil {
		t.Fatalf("reading greeting: %v", err)
	}
	if got, want := string(greeting), "220 backend ready\r\n"; got != want {
		t.Fatalf("greeting = %q, want %q", got, want)
	}
	if _, err := io.WriteString(c, "ping\r\n"); err != nil {
		t.Fatal(err)
	}
	echo := make([]byte, 6)
	if _, err := io.ReadFull(c, echo); err != nil {
		t.Fatalf("reading echo: %v", err)
	}
	if string(echo) != "ping\r\n" {
		t.Fatalf("echo = %q, want %q", echo, "ping\r\n")
	}
}
