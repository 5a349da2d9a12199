//go:build !mailwire_nobatch

// mailwire's batch API (issue 6, parts 1 to 3): pipelining across
// transactions, BDAT windows and the pool. run.sh builds with the tag
// mailwire_nobatch when the mailwire source it benchmarks (an older --ref)
// has no SendBatch, so that the harness still builds.

package main

import (
	"context"
	"iter"
	"slices"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
)

func init() {
	goClients["mailwire-batch"] = runMailwireConnBatch
	goClients["mailwire-pool-batch"] = runMailwirePoolBatch
	i := slices.Index(allClients, "mailwire-send") + 1
	allClients = slices.Insert(allClients, i, "mailwire-batch", "mailwire-pool-batch")
}

// batchMessages yields n messages with the same envelope; each body is
// released in the done callback.
type batchMessages struct {
	env   *envelope.Envelope
	src   msgSource
	n     int
	dones []func()
	err   error
}

func (b *batchMessages) seq() iter.Seq[transport.Message] {
	return func(yield func(transport.Message) bool) {
		for i := 0; i < b.n; i++ {
			r, done, err := b.src.open()
			if err != nil {
				b.err = err
				return
			}
			b.dones = append(b.dones, done)
			if !yield(transport.Message{Envelope: b.env, Body: r}) {
				return
			}
		}
	}
}

// done releases message i's body and records the first failure.
func (b *batchMessages) done(sent *int) func(int, *transport.Result, error) {
	return func(i int, _ *transport.Result, err error) {
		if i < len(b.dones) && b.dones[i] != nil {
			b.dones[i]()
			b.dones[i] = nil
		}
		if err != nil && b.err == nil {
			b.err = err
		} else if err == nil {
			*sent++
		}
	}
}

func newBatch(p *clientParams, n int, src msgSource) *batchMessages {
	return &batchMessages{env: envelope.New(benchSender, recipients(p.Rcpts)...), src: src, n: n}
}

// runMailwireConnBatch: one transport.Conn per connection, all its messages
// in one Conn.SendBatch call.
func runMailwireConnBatch(ctx context.Context, p *clientParams, n int, src msgSource) (int, error) {
	c, err := mailwireTransport(p).Dial(ctx)
	if err != nil {
		return 0, err
	}
	b := newBatch(p, n, src)
	sent := 0
	err = c.SendBatch(ctx, b.seq(), b.done(&sent))
	if err == nil {
		err = b.err
	}
	cerr := c.Close()
	if err == nil {
		err = cerr
	}
	return sent, err
}

// runMailwirePoolBatch: transport.SMTP.SendBatch, the pooled batch API with
// the default PoolConfig (which opens a new connection every
// DefaultMaxMessagesPerConn messages). Concurrent calls use separate
// connections.
func runMailwirePoolBatch(ctx context.Context, p *clientParams, n int, src msgSource) (int, error) {
	t := mailwireTransport(p)
	b := newBatch(p, n, src)
	sent := 0
	err := t.SendBatch(ctx, b.seq(), b.done(&sent))
	if err == nil {
		err = b.err
	}
	if cerr := t.Close(); err == nil {
		err = cerr
	}
	return sent, err
}
