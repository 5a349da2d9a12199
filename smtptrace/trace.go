// Package smtptrace provides hooks to observe the phases of SMTP and LMTP
// sessions, in the manner of net/http/httptrace.
//
// A [ClientTrace] travels in a context. Transports call its hooks as a Send
// goes through dialing, TLS, EHLO, AUTH, MAIL, RCPT, DATA or BDAT and the end
// of the data; middleware such as retry call the attempt hooks. Observability
// code (the otelsmtp middleware, loggers, tests) installs hooks with
// [WithClientTrace]; transports never import a tracing library.
//
// Hooks are called synchronously from the goroutine doing the Send and must
// return quickly. They never receive addresses, message content or
// credentials.
package smtptrace

import (
	"context"
	"crypto/tls"
)

// Phase names one step of a session.
type Phase string

// Phases, in session order.
const (
	PhaseDial      Phase = "dial"
	PhaseGreeting  Phase = "greeting"
	PhaseHello     Phase = "hello"
	PhaseTLS       Phase = "tls" // STARTTLS and handshake, or the implicit TLS handshake
	PhaseAuth      Phase = "auth"
	PhaseMail      Phase = "mail"
	PhaseRcpt      Phase = "rcpt" // one per recipient; Index says which
	PhaseData      Phase = "data" // DATA command and body, or the BDAT chunks
	PhaseEndOfData Phase = "end-of-data"
	PhaseReset     Phase = "reset"
	PhaseQuit      Phase = "quit"
)

// PhaseInfo describes a finished phase.
type PhaseInfo struct {
	// Index is the recipient's position in the envelope for PhaseRcpt and,
	// for LMTP, for the per-recipient replies of PhaseEndOfData; -1 otherwise.
	Index int
	// Code and EnhancedCode are the reply that ended the phase; 0 if none.
	Code         int
	EnhancedCode [3]int
	// Bytes is the number of message bytes written for PhaseData.
	Bytes int64
	// Command is "BDAT" or "DATA" for PhaseData, the mechanism name for
	// PhaseAuth, "EHLO", "HELO" or "LHLO" for PhaseHello.
	Command string
	// Err is the phase's error, nil on success.
	Err error
}

// ConnInfo describes the connection a Send is about to use.
type ConnInfo struct {
	Network  string               // "tcp" or "unix"
	Addr     string               // as dialed
	Reused   bool                 // taken from a pool rather than dialed
	TLS      *tls.ConnectionState // nil for a clear connection
	Security string               // the transport's security mode, such as "starttls"
}

// ClientTrace is a set of hooks. Any of them may be nil.
type ClientTrace struct {
	// PhaseStart is called when a phase begins.
	PhaseStart func(p Phase, index int)
	// PhaseDone is called when a phase ends, successfully or not.
	PhaseDone func(p Phase, info PhaseInfo)
	// GotConn is called when the session has a usable connection (after the
	// greeting, EHLO, TLS and AUTH for a new one).
	GotConn func(info ConnInfo)
	// ConnOpened is called when a new connection was dialed successfully.
	ConnOpened func(network, addr string)
	// AttemptStart is called by retrying middleware before attempt n (1 for
	// the first).
	AttemptStart func(n int)
	// AttemptDone is called by retrying middleware after attempt n.
	AttemptDone func(n int, err error)
}

type traceKey struct{}

// WithClientTrace returns a context carrying trace. If ctx already carries a
// trace, the hooks of both are called, trace's first.
func WithClientTrace(ctx context.Context, trace *ClientTrace) context.Context {
	if trace == nil {
		return ctx
	}
	if old := ContextClientTrace(ctx); old != nil {
		trace = compose(trace, old)
	}
	return context.WithValue(ctx, traceKey{}, trace)
}

// ContextClientTrace returns the trace carried by ctx, or nil.
func ContextClientTrace(ctx context.Context) *ClientTrace {
	t, _ := ctx.Value(traceKey{}).(*ClientTrace)
	return t
}

func compose(a, b *ClientTrace) *ClientTrace {
	return &ClientTrace{
		PhaseStart: func(p Phase, i int) {
			if a.PhaseStart != nil {
				a.PhaseStart(p, i)
			}
			if b.PhaseStart != nil {
				b.PhaseStart(p, i)
			}
		},
		PhaseDone: func(p Phase, info PhaseInfo) {
			if a.PhaseDone != nil {
				a.PhaseDone(p, info)
			}
			if b.PhaseDone != nil {
				b.PhaseDone(p, info)
			}
		},
		GotConn: func(info ConnInfo) {
			if a.GotConn != nil {
				a.GotConn(info)
			}
			if b.GotConn != nil {
				b.GotConn(info)
			}
		},
		ConnOpened: func(n, addr string) {
			if a.ConnOpened != nil {
				a.ConnOpened(n, addr)
			}
			if b.ConnOpened != nil {
				b.ConnOpened(n, addr)
			}
		},
		AttemptStart: func(n int) {
			if a.AttemptStart != nil {
				a.AttemptStart(n)
			}
			if b.AttemptStart != nil {
				b.AttemptStart(n)
			}
		},
		AttemptDone: func(n int, err error) {
			if a.AttemptDone != nil {
				a.AttemptDone(n, err)
			}
			if b.AttemptDone != nil {
				b.AttemptDone(n, err)
			}
		},
	}
}

// phaseStart calls t.PhaseStart if t and the hook are non-nil.
func (t *ClientTrace) phaseStart(p Phase, i int) {
	if t != nil && t.PhaseStart != nil {
		t.PhaseStart(p, i)
	}
}

// Start calls the PhaseStart hook of the trace in ctx, if any.
func Start(ctx context.Context, p Phase, index int) {
	ContextClientTrace(ctx).phaseStart(p, index)
}

// Done calls the PhaseDone hook of the trace in ctx, if any.
func Done(ctx context.Context, p Phase, info PhaseInfo) {
	if t := ContextClientTrace(ctx); t != nil && t.PhaseDone != nil {
		t.PhaseDone(p, info)
	}
}
