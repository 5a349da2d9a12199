package reliability_test

import (
	"context"
	"fmt"
	"iter"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mailwire/mailwire/internal/faultproxy"
	"github.com/mailwire/mailwire/transport"
)

// The batch API pipelines across transactions: with BDAT whole
// transactions are written ahead of their replies, with DATA a message's
// end of data travels with the next message's commands. A cut anywhere in
// such a session must never deliver a message twice nor report delivered
// one the server does not have; after the cut the rest of the batch goes
// on over a new connection (the proxy faults only the first).

const batchSize = 3

func batchMessage(i int) string {
	return strings.Replace(refMessage, "<reference@mailwire.test>", fmt.Sprintf("<batch-%d@mailwire.test>", i), 1)
}

type batchRun struct {
	results []*transport.Result
	errs    []error
	calls   []int
	err     error
	elapsed time.Duration
	ci      faultproxy.ConnInfo
	counts  []map[string]int // per message, per recipient: copies stored
	bad     []string
}

type batcher interface {
	SendBatch(ctx context.Context, msgs iter.Seq[transport.Message], done func(int, *transport.Result, error)) error
}

func runBatch(t *testing.T, m mode, cut *faultproxy.Point) batchRun {
	srv := newServer(t, m)
	cfg := proxyConfig(t, m, srv, false)
	cfg.Cut, cfg.FaultConns = cut, 1
	p, err := faultproxy.Start(cfg)
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	tr := newTransport(t, m, p.Addr(), false, nil)
	out := batchRun{results: make([]*transport.Result, batchSize), errs: make([]error, batchSize)}
	msgs := func(yield func(transport.Message) bool) {
		for i := 0; i < batchSize; i++ {
			if !yield(transport.Message{Envelope: refEnvelope(), Body: strings.NewReader(batchMessage(i))}) {
				return
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), runDeadline)
	begin := time.Now()
	out.err = tr.(batcher).SendBatch(ctx, msgs, func(i int, res *transport.Result, err error) {
		out.calls = append(out.calls, i)
		if i >= 0 && i < batchSize {
			out.results[i], out.errs[i] = res, err
		}
	})
	out.elapsed = time.Since(begin)
	cancel()
	transport.CloseIdleConnections(tr)
	p.Close()
	srv.Close()
	out.ci, _ = p.Conn(0)
	out.counts = make([]map[string]int, batchSize)
	for i := range out.counts {
		out.counts[i] = map[string]int{}
	}
	for _, msg := range srv.Messages() {
		i := -1
		for k := 0; k < batchSize; k++ {
			if string(msg.Data) == batchMessage(k) {
				i = k
			}
		}
		if i < 0 {
			if !msg.Chunked {
				out.bad = append(out.bad, fmt.Sprintf("server stored an unknown message %q", msg.Data))
			}
			continue
		}
		for _, r := range msg.Delivered {
			out.counts[i][r]++
		}
	}
	return out
}

func checkBatch(out batchRun) []string {
	p := append([]string(nil), out.bad...)
	if out.elapsed > runDeadline+runSlack {
		p = append(p, fmt.Sprintf("SendBatch took %v", out.elapsed))
	}
	// A batch that cannot reach the server reports the message at hand
	// and stops (documented); the rest get no done call and must not have
	// been sent.
	if len(out.calls) != batchSize && (out.err == nil || len(out.calls) == 0) {
		p = append(p, fmt.Sprintf("done called for %v, want each of %d messages once (SendBatch err %v)", out.calls, batchSize, out.err))
	}
	for i := len(out.calls); i < batchSize; i++ {
		if len(out.counts[i]) > 0 {
			p = append(p, fmt.Sprintf("message %d stored without a done call", i))
		}
	}
	for k, i := range out.calls {
		if i != k {
			p = append(p, fmt.Sprintf("done calls out of order: %v", out.calls))
			break
		}
	}
	for i := 0; i < batchSize; i++ {
		r := sendResult{res: out.results[i], err: out.errs[i]}
		if out.results[i] == nil {
			continue
		}
		for _, s := range checkShape(r, refEnvelope()) {
			p = append(p, fmt.Sprintf("message %d: %s", i, s))
		}
		for k, rr := range out.results[i].Rcpts {
			n := out.counts[i][rcptAddrs[k]]
			switch {
			case n > 1:
				p = append(p, fmt.Sprintf("message %d stored %d times for %s", i, n, rcptAddrs[k]))
			case rr.Outcome == transport.Accepted && n == 0:
				p = append(p, fmt.Sprintf("message %d reported accepted for %s, not stored", i, rcptAddrs[k]))
			case n == 1 && rr.Outcome != transport.Accepted && rr.Outcome != transport.Unknown:
				p = append(p, fmt.Sprintf("message %d stored for %s but reported %v", i, rcptAddrs[k], rr.Outcome))
			}
		}
	}
	return p
}

var figBatch = newFigure("batch-cut-runs-survived")

// TestCutSweepBatch cuts a three-message batch after every other byte
// (MAILWIRE_SWEEP_FULL=1: every byte) of its reference session, in each direction, for plain SMTP (BDAT, whole
// transactions ahead) and LMTP (DATA).
func TestCutSweepBatch(t *testing.T) {
	for _, name := range []string{"plain", "lmtp-tcp"} {
		m := modeByName(name)
		t.Run(name, func(t *testing.T) {
			ref := runBatch(t, m, nil)
			if p := checkBatch(ref); len(p) > 0 || ref.err != nil {
				t.Fatalf("reference batch: %v %s", ref.err, strings.Join(p, "; "))
			}
			for _, dir := range []faultproxy.Dir{faultproxy.Down, faultproxy.Up} {
				total := int64(len(ref.ci.Forwarded[dir]))
				stride := int64(2)
				if os.Getenv("MAILWIRE_SWEEP_FULL") == "1" {
					stride = 1
				}
				lost, dup, runs := 0, 0, 0
				for n := int64(0); n <= total; n += stride {
					runs++
					snap := takeSnapshot()
					out := runBatch(t, m, &faultproxy.Point{Dir: dir, N: n})
					p := checkBatch(out)
					for _, s := range p {
						if strings.Contains(s, "times for") {
							dup++
						}
						if strings.Contains(s, "not stored") || strings.Contains(s, "but reported") {
							lost++
						}
					}
					if l := snap.leaks(leakSettle); l != "" {
						p = append(p, "leak: "+l)
					}
					figBatch.add(len(p) == 0)
					if len(p) > 0 {
						t.Errorf("%s batch cut %v after %d: %s", name, dir, n, strings.Join(p, "\n  "))
					}
				}
				tallyDelivery(runs, lost, dup)
				t.Logf("%s batch %v: %d cut positions (0..%d, stride %d)", name, dir, runs, total, stride)
			}
		})
	}
	figBatch.log(t)
}
