package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailwire/mailwire/internal/faultproxy"
	"github.com/mailwire/mailwire/transport"
)

// stallDeadline is the Send deadline of a stall run: the stall always
// outlasts it.
const stallDeadline = 3 * time.Second

var (
	figStallWithin   = newFigure("stall-runs-within-deadline")
	figStallSurvived = newFigure("stall-faults-survived")
)

// checkDeadlineErr checks the error of a run ended by its own deadline
// while waiting at step op.
func checkDeadlineErr(err error, op transport.Op) []string {
	var p []string
	oe := opError(err)
	if oe == nil {
		return []string{fmt.Sprintf("error %T %v is not an *OpError", err, err)}
	}
	if oe.Op != op {
		p = append(p, fmt.Sprintf("op %s, want %s (%v)", oe.Op, op, err))
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			p = append(p, knownf("deadline-as-io-timeout", "the caller's deadline reported as %v", err))
		} else {
			p = append(p, fmt.Sprintf("error %v does not match context.DeadlineExceeded", err))
		}
	}
	if op != transport.OpEndOfData && errors.Is(err, transport.ErrTransient) && errors.Is(err, context.DeadlineExceeded) {
		p = append(p, fmt.Sprintf("the caller's own deadline must not be transient: %v", err))
	}
	return p
}

// checkElapsed checks that a run ended within its deadline and slack.
func checkElapsed(elapsed, deadline time.Duration, quitStalled bool) []string {
	if elapsed <= deadline+runSlack {
		return nil
	}
	if quitStalled {
		return []string{fmt.Sprintf("Send took %v with a %v deadline, waiting for the QUIT reply", elapsed, deadline)}
	}
	return []string{fmt.Sprintf("Send took %v, deadline %v", elapsed, deadline)}
}

// TestStallSweep holds each reply of each mode's reference session past
// the Send's deadline (the proxy terminates TLS to count replies), and
// stalls the TLS handshakes in the ciphertext. The runs go in parallel,
// so the leak check covers the whole group.
func TestStallSweep(t *testing.T) {
	type stallRun struct {
		c     cutCase
		check func(out runOutcome) []string
	}
	var runs []stallRun
	for _, m := range modes {
		ref, _ := reference(t, m, true)
		eod := endOfData(t, ref, m)
		for k := range ref.Replies {
			c := cutCase{m: m, intercept: true, stallRep: k + 1, deadline: stallDeadline}
			runs = append(runs, stallRun{c, func(out runOutcome) []string { return checkCutRun(c, ref, eod, out, true) }})
		}
		if !m.tls() {
			continue
		}
		// Handshake stalls, in the ciphertext.
		raw, ci := reference(t, m, false)
		var downAt, upAt int64 // where TLS starts in each direction
		if i := raw.Find("STARTTLS", 0); i >= 0 {
			downAt, upAt = raw.Steps[i].ReplyEnd(), raw.Steps[i].End
		}
		hsDown := int64(len(ci.Forwarded[faultproxy.Down])) - downAt
		for _, pt := range []faultproxy.Point{
			{Dir: faultproxy.Down, N: downAt}, {Dir: faultproxy.Down, N: downAt + 1}, {Dir: faultproxy.Down, N: downAt + hsDown/4},
			{Dir: faultproxy.Up, N: upAt}, {Dir: faultproxy.Up, N: upAt + 1},
		} {
			c := cutCase{m: m, stall: &pt, deadline: stallDeadline}
			runs = append(runs, stallRun{c, func(out runOutcome) []string {
				p := checkAllOutcomes(out, transport.TempFailed)
				if len(p) == 0 {
					p = append(p, checkDeadlineErr(out.r.err, transport.OpStartTLS)...)
				}
				return p
			}})
		}
	}
	snap := takeSnapshot()
	var wg sync.WaitGroup
	for _, run := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := runCase(t, run.c)
			if err != nil {
				t.Errorf("%v: %v", run.c, err)
				return
			}
			p := checkShape(out.r, refEnvelope())
			if len(p) == 0 {
				quit := out.r.err == nil && out.r.res.Count(transport.Accepted) == len(rcptAddrs)
				p = append(p, checkElapsed(out.r.elapsed, run.c.deadline, quit)...)
				p = append(p, checkCloseIdle(out.r)...)
				p = append(p, run.check(out)...)
			}
			dp, lost, dup := checkDelivery(out)
			p = append(p, dp...)
			tally(lost, dup)
			figStallWithin.add(out.r.elapsed <= run.c.deadline+runSlack)
			figStallSurvived.add(len(p) == 0)
			if p = dropKnown(p); len(p) > 0 {
				t.Errorf("%v: %s\n  result %s err %v (after %v)", run.c, strings.Join(p, "\n  "), describe(out.r.res), out.r.err, out.r.elapsed)
			}
		}()
	}
	wg.Wait()
	if l := snap.leaks(leakSettle); l != "" {
		t.Errorf("after the stall runs: %s", l)
	}
	t.Logf("%d stall runs, in parallel", len(runs))
	figStallWithin.log(t)
	figStallSurvived.log(t)
}

// checkCloseIdle checks that closing the idle connections after a Send
// did not hang on an unanswered QUIT.
func checkCloseIdle(r sendResult) []string {
	if r.closeIdle <= runSlack {
		return nil
	}
	return []string{fmt.Sprintf("CloseIdleConnections took %v", r.closeIdle)}
}

// checkAllOutcomes checks that every recipient has outcome o.
func checkAllOutcomes(out runOutcome, o transport.Outcome) []string {
	var p []string
	for i, rr := range out.r.res.Rcpts {
		if rr.Outcome != o {
			p = append(p, fmt.Sprintf("recipient %d: %v, want %v", i, rr.Outcome, o))
		}
	}
	return p
}
