package otelsmtp_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/middleware/otelsmtp"
	"github.com/mailwire/mailwire/smtptrace"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// A Send that fails after the connection was dialed but before the session
// on it was usable (no GotConn: TLS or AUTH failed) still names the server
// on its span and in its metrics, and never records a mailbox.
func TestFailureBeforeGotConnNamesServer(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T) (*smtptest.Server, transport.Transport)
		event string // the failed phase's event
	}{
		{
			name: "AUTH refused",
			setup: func(t *testing.T) (*smtptest.Server, transport.Transport) {
				s := smtptest.NewUnstartedServer()
				s.Users = map[string]string{"alice": "right-password"}
				s.RequireAuth = true
				s.Start()
				tr := s.Transport()
				tr.Auth = auth.Config{
					Credentials:   auth.Credentials{Username: "alice", Password: "hunter2-wrong"},
					Mechanisms:    []string{"PLAIN"},
					AllowInsecure: true,
				}
				return s, tr
			},
			event: "smtp.auth",
		},
		{
			name: "implicit TLS certificate not trusted",
			setup: func(t *testing.T) (*smtptest.Server, transport.Transport) {
				s := smtptest.NewUnstartedServer()
				s.Security = transport.ImplicitTLS
				s.ErrorLog = log.New(io.Discard, "", 0) // the failed handshake is expected
				s.Start()
				tr := s.Transport()
				tr.TLSConfig = &tls.Config{ServerName: "localhost"} // system roots: the test CA is unknown
				return s, tr
			},
			event: "smtp.tls",
		},
		{
			name: "STARTTLS certificate not trusted",
			setup: func(t *testing.T) (*smtptest.Server, transport.Transport) {
				s := smtptest.NewUnstartedServer()
				s.Security = transport.StartTLS
				s.ErrorLog = log.New(io.Discard, "", 0)
				s.Start()
				tr := s.Transport()
				tr.TLSConfig = &tls.Config{ServerName: "localhost"}
				return s, tr
			},
			event: "smtp.tls",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, base := tt.setup(t)
			defer s.Close()
			if ic, ok := base.(transport.IdleCloser); ok {
				defer ic.CloseIdleConnections()
			}
			host, port, err := net.SplitHostPort(s.Addr)
			if err != nil {
				t.Fatal(err)
			}
			portN, _ := strconv.Atoi(port)

			f := newFixture(t)
			var gotConn bool
			ctx := smtptrace.WithClientTrace(context.Background(), &smtptrace.ClientTrace{
				GotConn: func(smtptrace.ConnInfo) { gotConn = true },
			})
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			tr := otelsmtp.New(f.options...)(base)
			_, err = tr.Send(ctx, env("bob@example.org", "carol@example.org"), strings.NewReader(message))
			if err == nil {
				t.Fatal("Send succeeded, want a failure")
			}
			if gotConn {
				t.Fatal("GotConn was called: the test does not fail before it")
			}
			if n := len(s.Messages()); n != 0 {
				t.Fatalf("%d messages delivered", n)
			}

			spans := f.spans.Ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			sp := spans[0]
			server := map[string]any{
				"server.address":         host,
				"server.port":            portN,
				"network.transport":      "tcp",
				"smtp.connection.reused": false,
			}
			wantAttrs(t, "span", sp.Attributes(), server)
			for _, k := range []string{"smtp.security", "tls.protocol.version"} {
				// Not reported before GotConn: absent rather than guessed.
				if v, ok := attrMap(sp.Attributes())[k]; ok {
					t.Errorf("span: %s = %v, set although no hook reported it", k, v.AsInterface())
				}
			}
			et, ok := attrMap(sp.Attributes())["error.type"]
			if !ok || et.AsString() == "" {
				t.Errorf("span: no error.type")
			}
			if sp.Status().Code != codes.Error {
				t.Errorf("status = %+v, want Error", sp.Status())
			}
			var failed bool
			for _, e := range sp.Events() {
				if _, ok := attrMap(e.Attributes)["error.type"]; ok && e.Name == tt.event {
					failed = true
				}
			}
			if !failed {
				t.Errorf("no failed %s event in %v", tt.event, sp.Events())
			}

			ms := f.metrics(t)
			serverSet := func(where string, set attribute.Set) {
				t.Helper()
				if v, _ := set.Value("server.address"); v.AsString() != host {
					t.Errorf("%s: server.address = %q, want %q (%v)", where, v.AsString(), host, set.ToSlice())
				}
				if v, _ := set.Value("server.port"); v.AsInt64() != int64(portN) {
					t.Errorf("%s: server.port = %d, want %d", where, v.AsInt64(), portN)
				}
				if v, _ := set.Value("smtp.transport"); v.AsString() != "smtp" {
					t.Errorf("%s: lacks the WithAttributes attribute", where)
				}
			}
			dur := ms["smtp.client.send.duration"].Data.(metricdata.Histogram[float64]).DataPoints
			if len(dur) != 1 || dur[0].Count != 1 {
				t.Fatalf("duration points = %+v, want one with count 1", dur)
			}
			serverSet("send.duration", dur[0].Attributes)
			if v, _ := dur[0].Attributes.Value("error.type"); v.AsString() != et.AsString() {
				t.Errorf("send.duration: error.type = %q, want %q", v.AsString(), et.AsString())
			}
			var rcpts int64
			for _, dp := range ms["smtp.client.recipients"].Data.(metricdata.Sum[int64]).DataPoints {
				serverSet("recipients", dp.Attributes)
				rcpts += dp.Value
			}
			if rcpts != 2 {
				t.Errorf("recipients counted = %d, want 2", rcpts)
			}
			var conns int64
			for _, dp := range ms["smtp.client.connection.opened"].Data.(metricdata.Sum[int64]).DataPoints {
				serverSet("connection.opened", dp.Attributes)
				conns += dp.Value
			}
			if conns != 1 {
				t.Errorf("connections = %d, want 1", conns)
			}

			// Only the server's address: no mailbox, no credential.
			var values []string
			for _, kv := range sp.Attributes() {
				values = append(values, fmt.Sprintf("span %s=%s", kv.Key, kv.Value.Emit()))
			}
			for _, e := range sp.Events() {
				for _, kv := range e.Attributes {
					values = append(values, fmt.Sprintf("event %s %s=%s", e.Name, kv.Key, kv.Value.Emit()))
				}
			}
			for _, m := range ms {
				switch d := m.Data.(type) {
				case metricdata.Sum[int64]:
					for _, dp := range d.DataPoints {
						values = append(values, fmt.Sprint(m.Name, dp.Attributes.ToSlice()))
					}
				case metricdata.Histogram[float64]:
					for _, dp := range d.DataPoints {
						values = append(values, fmt.Sprint(m.Name, dp.Attributes.ToSlice()))
					}
				}
			}
			for _, v := range values {
				for _, p := range append(private, "right-password", "hunter2-wrong") {
					if strings.Contains(strings.ToLower(v), strings.ToLower(p)) {
						t.Errorf("recorded %q, which contains %q", v, p)
					}
				}
			}
		})
	}
}

// staleConn is a transport whose Send gets a usable connection to one
// server, then dials another whose TLS handshake fails, as a failover or a
// retry inside the middleware may do.
type staleConn struct{}

func (staleConn) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
	tr := smtptrace.ContextClientTrace(ctx)
	tr.ConnOpened("tcp", "mx1.example.net:465")
	tr.GotConn(smtptrace.ConnInfo{Network: "tcp", Addr: "mx1.example.net:465", Security: "tls", TLS: &tls.ConnectionState{Version: tls.VersionTLS13}})
	tr.ConnOpened("tcp", "[2001:db8::2]:587")
	err := &transport.OpError{Op: transport.OpStartTLS, Addr: "[2001:db8::2]:587", Err: io.ErrUnexpectedEOF}
	smtptrace.Start(ctx, smtptrace.PhaseTLS, -1)
	smtptrace.Done(ctx, smtptrace.PhaseTLS, smtptrace.PhaseInfo{Index: -1, Err: err})
	return nil, err
}

// The span and metrics describe the last connection, not a mix of it and
// an earlier one of the same Send.
func TestLastConnectionWins(t *testing.T) {
	f := newFixture(t)
	tr := otelsmtp.New(f.options...)(staleConn{})
	if _, err := tr.Send(context.Background(), env("bob@example.org"), strings.NewReader(message)); err == nil {
		t.Fatal("Send succeeded")
	}
	sp := f.spans.Ended()[0]
	wantAttrs(t, "span", sp.Attributes(), map[string]any{
		"server.address":         "2001:db8::2",
		"server.port":            587,
		"network.transport":      "tcp",
		"smtp.connection.reused": false,
	})
	for _, k := range []string{"smtp.security", "tls.protocol.version"} {
		if v, ok := attrMap(sp.Attributes())[k]; ok {
			t.Errorf("span: %s = %v, left over from the first connection", k, v.AsInterface())
		}
	}
	dur := f.metrics(t)["smtp.client.send.duration"].Data.(metricdata.Histogram[float64]).DataPoints
	if len(dur) != 1 {
		t.Fatalf("duration points = %+v", dur)
	}
	if v, _ := dur[0].Attributes.Value("server.address"); v.AsString() != "2001:db8::2" {
		t.Errorf("send.duration: server.address = %q, want the last server", v.AsString())
	}
}
