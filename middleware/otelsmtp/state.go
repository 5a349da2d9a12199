package otelsmtp

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/mailwire/mailwire/middleware/internal/report"
	"github.com/mailwire/mailwire/smtptrace"
	"github.com/mailwire/mailwire/transport"
)

// Attribute keys. OpenTelemetry has no semantic conventions for SMTP, so
// the generic ones are used where they exist and the rest live under smtp.
const (
	keyServerAddress    = attribute.Key("server.address")
	keyServerPort       = attribute.Key("server.port")
	keyNetworkTransport = attribute.Key("network.transport")
	keyTLSVersion       = attribute.Key("tls.protocol.version")
	keyErrorType        = attribute.Key("error.type")

	keyRcptCount    = attribute.Key("smtp.recipients.count")
	keyRcptRefused  = attribute.Key("smtp.recipients.refused")
	keyReplyCode    = attribute.Key("smtp.reply.code")
	keyEnhancedCode = attribute.Key("smtp.reply.enhanced_code")
	keyAttempts     = attribute.Key("smtp.attempts")
	keyAttempt      = attribute.Key("smtp.attempt")
	keySecurity     = attribute.Key("smtp.security")
	keyReused       = attribute.Key("smtp.connection.reused")
	keyPhaseDur     = attribute.Key("smtp.phase.duration")
	keyRcptIndex    = attribute.Key("smtp.rcpt.index")
	keyCommand      = attribute.Key("smtp.command")
	keyDataBytes    = attribute.Key("smtp.data.bytes")
	keyOutcome      = attribute.Key("smtp.outcome")
)

type phaseKey struct {
	p     smtptrace.Phase
	index int
}

// sendState collects what the hooks report during one Send.
type sendState struct {
	ctx  context.Context
	span trace.Span
	t    *tracing

	mu       sync.Mutex
	started  map[phaseKey]time.Time
	bytes    int64
	attempts int
	conn     connState // the last connection dialed or got
}

// connState is what the hooks told of a connection. A connection reported
// by ConnOpened is known by its server before the session on it succeeds
// (a TLS or AUTH failure ends the Send before GotConn); GotConn completes
// it with what only a usable session knows.
type connState struct {
	known   bool                 // a hook reported a connection
	server  []attribute.KeyValue // server.address, server.port
	network string               // network.transport
	reused  bool
	got     bool   // reported by GotConn: the fields below are known
	sec     string // smtp.security
	tlsVer  string // tls.protocol.version; "" in clear
}

// spanAttrs returns the span attributes of the connection: the server's
// alone, as the hooks report them, or with full set the ones GotConn adds.
func (c *connState) spanAttrs(full bool) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, len(c.server)+5)
	attrs = append(attrs, c.server...)
	if c.network != "" {
		attrs = append(attrs, keyNetworkTransport.String(c.network))
	}
	attrs = append(attrs, keyReused.Bool(c.reused))
	if full && c.got {
		if c.sec != "" {
			attrs = append(attrs, keySecurity.String(c.sec))
		}
		if c.tlsVer != "" {
			attrs = append(attrs, keyTLSVersion.String(c.tlsVer))
		}
	}
	return attrs
}

func (s *sendState) hooks() *smtptrace.ClientTrace {
	return &smtptrace.ClientTrace{
		PhaseStart:   s.phaseStart,
		PhaseDone:    s.phaseDone,
		GotConn:      s.gotConn,
		ConnOpened:   s.connOpened,
		AttemptStart: s.attemptStart,
		AttemptDone:  s.attemptDone,
	}
}

func (s *sendState) phaseStart(p smtptrace.Phase, index int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started == nil {
		s.started = make(map[phaseKey]time.Time)
	}
	s.started[phaseKey{p, index}] = time.Now()
}

func (s *sendState) phaseDone(p smtptrace.Phase, info smtptrace.PhaseInfo) {
	now := time.Now()
	attrs := make([]attribute.KeyValue, 0, 6)
	s.mu.Lock()
	k := phaseKey{p, info.Index}
	if t, ok := s.started[k]; ok {
		attrs = append(attrs, keyPhaseDur.Float64(now.Sub(t).Seconds()))
		delete(s.started, k)
	} else if t, ok := s.started[phaseKey{p, -1}]; ok && info.Index >= 0 {
		// LMTP: one start for the end of the data, one reply per recipient.
		attrs = append(attrs, keyPhaseDur.Float64(now.Sub(t).Seconds()))
	}
	if p == smtptrace.PhaseData {
		s.bytes += info.Bytes
	}
	s.mu.Unlock()

	if info.Index >= 0 && (p == smtptrace.PhaseRcpt || p == smtptrace.PhaseEndOfData) {
		attrs = append(attrs, keyRcptIndex.Int(info.Index))
	}
	if info.Code != 0 {
		attrs = append(attrs, keyReplyCode.Int(info.Code))
	}
	if ec := transport.EnhancedCode(info.EnhancedCode); ec != (transport.EnhancedCode{}) {
		attrs = append(attrs, keyEnhancedCode.String(ec.String()))
	}
	if info.Command != "" {
		attrs = append(attrs, keyCommand.String(info.Command))
	}
	if p == smtptrace.PhaseData {
		attrs = append(attrs, keyDataBytes.Int64(info.Bytes))
	}
	if info.Err != nil {
		attrs = append(attrs, keyErrorType.String(report.ErrorType(info.Err)))
	}
	s.span.AddEvent(eventName(p), trace.WithTimestamp(now), trace.WithAttributes(attrs...))
}

// eventName returns "smtp." and the phase, with underscores for hyphens.
func eventName(p smtptrace.Phase) string {
	return "smtp." + strings.ReplaceAll(string(p), "-", "_")
}

func (s *sendState) gotConn(info smtptrace.ConnInfo) {
	c := connState{
		known:   true,
		server:  serverAttrs(info.Addr),
		network: networkTransport(info.Network),
		reused:  info.Reused,
		got:     true,
		sec:     info.Security,
	}
	if info.TLS != nil {
		c.tlsVer = tlsVersion(info.TLS.Version)
	}
	s.mu.Lock()
	s.conn = c
	s.mu.Unlock()
	// smtp.security and tls.protocol.version are set by end, from the last
	// connection: set here, they would stay on the span if a later
	// connection of the same Send (a retry, a failover) failed before its
	// GotConn, and describe a connection that is not the one that failed.
	s.span.SetAttributes(c.spanAttrs(false)...)
	s.span.AddEvent("smtp.connection", trace.WithAttributes(keyReused.Bool(info.Reused)))
}

// connOpened records the server of a new connection at once, on the span
// and for the Send's metrics: the session on it may still fail (TLS, AUTH)
// before GotConn, and that failure must name its server. addr is the
// server's address as dialed, never a mailbox's.
func (s *sendState) connOpened(network, addr string) {
	c := connState{known: true, server: serverAttrs(addr), network: networkTransport(network)}
	s.mu.Lock()
	s.conn = c
	s.mu.Unlock()
	s.span.SetAttributes(c.spanAttrs(false)...)

	attrs := make([]attribute.KeyValue, 0, len(s.t.attrs)+3)
	attrs = append(attrs, s.t.attrs...)
	attrs = append(attrs, c.server...)
	if c.network != "" {
		attrs = append(attrs, keyNetworkTransport.String(c.network))
	}
	s.t.in.connections.Add(s.ctx, 1, metric.WithAttributeSet(attribute.NewSet(attrs...)))
}

func (s *sendState) attemptStart(n int) {
	s.mu.Lock()
	s.attempts = max(s.attempts, n)
	s.mu.Unlock()
	s.span.AddEvent("smtp.attempt.start", trace.WithAttributes(keyAttempt.Int(n)))
}

func (s *sendState) attemptDone(n int, err error) {
	attrs := []attribute.KeyValue{keyAttempt.Int(n)}
	if err != nil {
		attrs = append(attrs, keyErrorType.String(report.ErrorType(err)))
	}
	s.span.AddEvent("smtp.attempt.done", trace.WithAttributes(attrs...))
}

// end finishes the span and records the metrics of a Send of n recipients.
func (s *sendState) end(n int, res *transport.Result, err error, d time.Duration) {
	sum := report.Summarize(res, err)
	refused := sum.Refused()
	if res == nil && err != nil {
		refused = n
	}
	attrs := []attribute.KeyValue{keyRcptRefused.Int(refused)}
	if sum.Code != 0 {
		attrs = append(attrs, keyReplyCode.Int(sum.Code))
	}
	if sum.EnhancedCode != (transport.EnhancedCode{}) {
		attrs = append(attrs, keyEnhancedCode.String(sum.EnhancedCode.String()))
	}
	s.mu.Lock()
	attempts, bytes, conn := s.attempts, s.bytes, s.conn
	s.mu.Unlock()
	server := conn.server
	if attempts > 0 {
		attrs = append(attrs, keyAttempts.Int(attempts))
	}
	if err != nil {
		attrs = append(attrs, keyErrorType.String(sum.ErrorType))
	}
	if conn.known {
		attrs = append(attrs, conn.spanAttrs(true)...)
	}
	s.span.SetAttributes(attrs...)
	if err != nil {
		s.span.SetStatus(codes.Error, sum.ErrorType)
	}
	s.span.End()

	// Metrics, with the static attributes and the server's.
	base := make([]attribute.KeyValue, 0, len(s.t.attrs)+len(server)+1)
	base = append(base, s.t.attrs...)
	base = append(base, server...)
	durAttrs := base
	if err != nil {
		durAttrs = append(durAttrs[:len(durAttrs):len(durAttrs)], keyErrorType.String(sum.ErrorType))
	}
	in := s.t.in
	in.duration.Record(s.ctx, d.Seconds(), metric.WithAttributeSet(attribute.NewSet(durAttrs...)))
	for _, c := range []struct {
		outcome string
		n       int
	}{
		{"accepted", sum.Accepted},
		{"transient", sum.Transient},
		{"permanent", sum.Permanent},
		{"unknown", sum.Unknown},
		{"not_attempted", sum.NotAttempted},
	} {
		if c.n > 0 {
			a := append(base[:len(base):len(base)], keyOutcome.String(c.outcome))
			in.recipients.Add(s.ctx, int64(c.n), metric.WithAttributeSet(attribute.NewSet(a...)))
		}
	}
	if bytes > 0 {
		in.bytes.Add(s.ctx, bytes, metric.WithAttributeSet(attribute.NewSet(base...)))
	}
}

// serverAttrs returns server.address and, for host:port, server.port.
func serverAttrs(addr string) []attribute.KeyValue {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return []attribute.KeyValue{keyServerAddress.String(addr)} // a Unix socket path
	}
	attrs := []attribute.KeyValue{keyServerAddress.String(host)}
	if p, err := strconv.Atoi(port); err == nil {
		attrs = append(attrs, keyServerPort.Int(p))
	}
	return attrs
}

// networkTransport maps a Go network name to network.transport's values.
func networkTransport(network string) string {
	switch network {
	case "tcp", "tcp4", "tcp6", "":
		return "tcp"
	case "unix":
		return "unix"
	}
	return network
}

func tlsVersion(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "1.0"
	case tls.VersionTLS11:
		return "1.1"
	case tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS13:
		return "1.3"
	}
	return ""
}
