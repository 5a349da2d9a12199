package smtptrace_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mailwire/mailwire/smtptrace"
)

func TestComposeCallsBothInOrder(t *testing.T) {
	var calls []string
	outer := &smtptrace.ClientTrace{
		PhaseStart:   func(p smtptrace.Phase, i int) { calls = append(calls, "outer-start-"+string(p)) },
		PhaseDone:    func(p smtptrace.Phase, _ smtptrace.PhaseInfo) { calls = append(calls, "outer-done-"+string(p)) },
		AttemptStart: func(int) { calls = append(calls, "outer-attempt") },
	}
	inner := &smtptrace.ClientTrace{
		PhaseStart: func(p smtptrace.Phase, i int) { calls = append(calls, "inner-start-"+string(p)) },
		GotConn:    func(smtptrace.ConnInfo) { calls = append(calls, "inner-gotconn") },
	}
	ctx := smtptrace.WithClientTrace(context.Background(), outer)
	ctx = smtptrace.WithClientTrace(ctx, inner)
	smtptrace.Start(ctx, smtptrace.PhaseMail, -1)
	smtptrace.Done(ctx, smtptrace.PhaseMail, smtptrace.PhaseInfo{})
	tr := smtptrace.ContextClientTrace(ctx)
	tr.GotConn(smtptrace.ConnInfo{})
	tr.AttemptStart(1)
	tr.AttemptDone(1, nil) // neither has it: must not panic
	got := strings.Join(calls, ",")
	want := "inner-start-mail,outer-start-mail,outer-done-mail,inner-gotconn,outer-attempt"
	if got != want {
		t.Errorf("calls = %s\nwant    %s", got, want)
	}
}

func TestNoTrace(t *testing.T) {
	ctx := context.Background()
	if smtptrace.ContextClientTrace(ctx) != nil {
		t.Fatal("trace in a bare context")
	}
	smtptrace.Start(ctx, smtptrace.PhaseDial, -1) // no-ops
	smtptrace.Done(ctx, smtptrace.PhaseDial, smtptrace.PhaseInfo{})
	if smtptrace.WithClientTrace(ctx, nil) != ctx {
		t.Error("WithClientTrace(nil) changed the context")
	}
}
