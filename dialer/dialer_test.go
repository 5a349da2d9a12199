package dialer_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailwire/mailwire/dialer"
)

// testTimeout bounds waits that should end at once; it only turns a hang
// into a failure.
const testTimeout = 10 * time.Second

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func TestDefault(t *testing.T) {
	d := dialer.Default()
	if d.Timeout != 30*time.Second {
		t.Errorf("Default().Timeout = %v, want 30s", d.Timeout)
	}
	if d.LocalAddr != nil {
		t.Errorf("Default().LocalAddr = %v, want nil", d.LocalAddr)
	}
	if dialer.Default() == d {
		t.Error("Default() returned the same *net.Dialer twice; callers may modify it")
	}
}

func TestFixedRedirects(t *testing.T) {
	backend := newLineServer(t, "tcp", "127.0.0.1:0")
	d := dialer.Fixed("tcp", backend.ln.Addr().String(), nil)
	c, err := d.DialContext(testContext(t), "tcp", "mail.example.invalid:25")
	if err != nil {
		t.Fatalf("DialContext: %v", err)
	}
	defer c.Close()
	talk(t, c)
	if got, want := c.RemoteAddr().String(), backend.ln.Addr().String(); got != want {
		t.Errorf("RemoteAddr = %s, want %s", got, want)
	}
}

func TestFixedUnix(t *testing.T) {
	dir, err := os.MkdirTemp("", "dialer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "relay.sock")
	newLineServer(t, "unix", sock)

	d := dialer.Fixed("unix", sock, nil)
	c, err := d.DialContext(testContext(t), "tcp", "relay.example.org:25")
	if err != nil {
		t.Fatalf("DialContext: %v", err)
	}
	defer c.Close()
	talk(t, c)
	if got := c.RemoteAddr().Network(); got != "unix" {
		t.Errorf("RemoteAddr().Network() = %q, want unix", got)
	}
}

func TestFixedUsesDialer(t *testing.T) {
	var gotNetwork, gotAddress string
	var gotCtx context.Context
	wantErr := errors.New("not dialing")
	d := dialer.Fixed("unix", "/run/relay.sock", dialer.Func(func(ctx context.Context, network, address string) (net.Conn, error) {
		gotCtx, gotNetwork, gotAddress = ctx, network, address
		return nil, wantErr
	}))
	type key struct{}
	ctx := context.WithValue(t.Context(), key{}, "v")
	if _, err := d.DialContext(ctx, "tcp", "mx.example.org:25"); err != wantErr {
		t.Fatalf("DialContext err = %v, want %v", err, wantErr)
	}
	if gotNetwork != "unix" || gotAddress != "/run/relay.sock" {
		t.Errorf("inner dialer got %s %s, want unix /run/relay.sock", gotNetwork, gotAddress)
	}
	if gotCtx == nil || gotCtx.Value(key{}) != "v" {
		t.Error("inner dialer did not receive the caller's context")
	}
}

func TestFixedCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	d := dialer.Fixed("tcp", "127.0.0.1:1", nil)
	_, err := d.DialContext(ctx, "tcp", "ignored:25")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("DialContext with a cancelled context: err = %v, want context.Canceled", err)
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestProxy(t *testing.T) {
	tests := []struct {
		name     string
		user     string // server's user; "" means no authentication
		password string
		scheme   string
		userinfo *url.Userinfo // client's credentials
		dest     string
	}{
		{name: "no-auth", scheme: "socks5", dest: "mail.example.org:25"},
		{name: "socks5h", scheme: "socks5h", dest: "mail.example.org:587"},
		{name: "ip-destination", scheme: "socks5", dest: "192.0.2.25:25"},
		{name: "user-password", user: "alice", password: "s3cr:t@", scheme: "socks5", userinfo: url.UserPassword("alice", "s3cr:t@"), dest: "mail.example.org:25"},
		{name: "user-empty-password", user: "bob", scheme: "socks5", userinfo: url.User("bob"), dest: "mail.example.org:25"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			backend := newLineServer(t, "tcp", "127.0.0.1:0")
			proxy := newSOCKSServer(t, func(s *socksServer) {
				s.User, s.Password = tt.user, tt.password
				s.Targets = map[string]string{tt.dest: backend.ln.Addr().String()}
			})
			// Round-trip through the string form, as a configuration would.
			u := mustParse(t, (&url.URL{Scheme: tt.scheme, Host: proxy.addr(), User: tt.userinfo}).String())
			d, err := dialer.Proxy(u, nil)
			if err != nil {
				t.Fatalf("Proxy(%s): %v", u.Redacted(), err)
			}
			c, err := d.DialContext(testContext(t), "tcp", tt.dest)
			if err != nil {
				t.Fatalf("DialContext: %v", err)
			}
			defer c.Close()
			talk(t, c)
			requests, _, users := proxy.snapshot()
			if len(requests) != 1 || requests[0] != tt.dest {
				t.Errorf("proxy saw requests %q, want [%q]", requests, tt.dest)
			}
			if tt.user != "" && (len(users) != 1 || users[0] != tt.user) {
				t.Errorf("proxy authenticated %q, want [%q]", users, tt.user)
			}
		})
	}
}

func TestProxyWrongPassword(t *testing.T) {
	proxy := newSOCKSServer(t, func(s *socksServer) { s.User, s.Password = "alice", "right" })
	u := mustParse(t, "socks5://alice:hunter2@"+proxy.addr())
	d, err := dialer.Proxy(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.DialContext(testContext(t), "tcp", "mail.example.org:25")
	if err == nil {
		c.Close()
		t.Fatal("DialContext with a wrong password succeeded")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %q contains the password", err)
	}
	if requests, _, _ := proxy.snapshot(); len(requests) != 0 {
		t.Errorf("proxy received a CONNECT after failed authentication: %q", requests)
	}
}

func TestProxyAuthRequiredButNoneGiven(t *testing.T) {
	proxy := newSOCKSServer(t, func(s *socksServer) { s.User, s.Password = "alice", "pw" })
	d, err := dialer.Proxy(mustParse(t, "socks5://"+proxy.addr()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := d.DialContext(testContext(t), "tcp", "mail.example.org:25"); err == nil {
		c.Close()
		t.Fatal("DialContext without credentials succeeded against a proxy requiring them")
	}
}

func TestProxyBadURL(t *testing.T) {
	tests := []struct {
		name string
		url  string
	}{
		{"http", "http://proxy.example:3128"},
		{"socks4", "socks4://proxy.example:1080"},
		{"no-host", "socks5://:1080"},
		{"password-without-user", "socks5://:pw@proxy.example:1080"},
		{"long-user", "socks5://" + strings.Repeat("u", 256) + ":pw@proxy.example:1080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := dialer.Proxy(mustParse(t, tt.url), nil)
			if err == nil {
				t.Fatalf("Proxy(%q) = %v, nil; want an error", tt.url, d)
			}
			if strings.Contains(err.Error(), "pw") {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
	if _, err := dialer.Proxy(nil, nil); err == nil {
		t.Error("Proxy(nil) succeeded")
	}
}

func TestProxyDefaultPort(t *testing.T) {
	var got string
	fwd := dialer.Func(func(ctx context.Context, network, address string) (net.Conn, error) {
		got = network + " " + address
		return nil, errors.New("not dialing")
	})
	d, err := dialer.Proxy(mustParse(t, "socks5://proxy.example"), fwd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.DialContext(testContext(t), "tcp", "mail.example.org:25"); err == nil {
		t.Fatal("DialContext succeeded with a failing forward dialer")
	}
	if want := "tcp proxy.example:1080"; got != want {
		t.Errorf("forward dialer asked for %q, want %q", got, want)
	}
}

func TestProxyUnixRefused(t *testing.T) {
	d, err := dialer.Proxy(mustParse(t, "socks5://127.0.0.1:1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := d.DialContext(testContext(t), "unix", "/run/relay.sock"); err == nil {
		c.Close()
		t.Fatal("DialContext(unix) through a SOCKS proxy succeeded")
	}
}

// TestProxyCancel cancels a dial while the proxy has accepted the TCP
// connection but never answers the SOCKS greeting: only the context can end
// the dial.
func TestProxyCancel(t *testing.T) {
	proxy := newSOCKSServer(t, func(s *socksServer) { s.Stall = true })
	d, err := dialer.Proxy(mustParse(t, "socks5://"+proxy.addr()), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		c, err := d.DialContext(ctx, "tcp", "mail.example.org:25")
		if c != nil {
			c.Close()
		}
		errc <- err
	}()
	select {
	case <-proxy.greeted:
	case <-time.After(testTimeout):
		t.Fatal("proxy never received the greeting")
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("DialContext after cancel: err = %v, want context.Canceled", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("DialContext did not return after cancel")
	}
}

func TestProxyDeadline(t *testing.T) {
	proxy := newSOCKSServer(t, func(s *socksServer) { s.Stall = true })
	d, err := dialer.Proxy(mustParse(t, "socks5://"+proxy.addr()), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = d.DialContext(ctx, "tcp", "mail.example.org:25")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("DialContext past the deadline: err = %v, want context.DeadlineExceeded", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Errorf("err = %T, want it to wrap a *net.OpError", err)
	}
}

// TestLocalAddr binds the source address with net.Dialer.LocalAddr, directly,
// through Fixed and through Proxy (where the proxy is what sees it). It uses
// 127.0.0.2 where the system routes it to loopback (Linux does), so that the
// binding is visible: an unbound dial to 127.0.0.1 would come from 127.0.0.1
// anyway.
func TestLocalAddr(t *testing.T) {
	ip := net.ParseIP("127.0.0.2")
	if l, err := net.Listen("tcp", "127.0.0.2:0"); err != nil {
		if !errors.Is(err, syscall.EADDRNOTAVAIL) {
			t.Logf("cannot use 127.0.0.2 (%v); binding 127.0.0.1", err)
		}
		ip = net.ParseIP("127.0.0.1")
	} else {
		l.Close()
	}
	bound := &net.Dialer{Timeout: testTimeout, LocalAddr: &net.TCPAddr{IP: ip}}

	t.Run("fixed", func(t *testing.T) {
		backend := newLineServer(t, "tcp", "127.0.0.1:0")
		c, err := dialer.Fixed("tcp", backend.ln.Addr().String(), bound).DialContext(testContext(t), "tcp", "mx.example:25")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		talk(t, c)
		seen := backend.seen()
		if len(seen) != 1 || !seen[0].(*net.TCPAddr).IP.Equal(ip) {
			t.Errorf("server saw clients %v, want one from %v", seen, ip)
		}
	})

	t.Run("proxy", func(t *testing.T) {
		backend := newLineServer(t, "tcp", "127.0.0.1:0")
		proxy := newSOCKSServer(t, func(s *socksServer) {
			s.Targets = map[string]string{"mx.example:25": backend.ln.Addr().String()}
		})
		d, err := dialer.Proxy(mustParse(t, "socks5://"+proxy.addr()), bound)
		if err != nil {
			t.Fatal(err)
		}
		c, err := d.DialContext(testContext(t), "tcp", "mx.example:25")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		talk(t, c)
		_, sources, _ := proxy.snapshot()
		if len(sources) != 1 {
			t.Fatalf("proxy saw %d clients, want 1", len(sources))
		}
		host, _, _ := net.SplitHostPort(sources[0])
		if !net.ParseIP(host).Equal(ip) {
			t.Errorf("proxy saw client %s, want %v", sources[0], ip)
		}
	})
}
