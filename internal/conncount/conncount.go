// Package conncount counts the connections a dialer opens and how many are
// open at once. Tests use it to check connection reuse and caps.
package conncount

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailwire/mailwire/dialer"
)

// Dialer wraps another dialer and counts its connections. The zero value
// dials with a net.Dialer. It is safe for concurrent use.
type Dialer struct {
	// Dialer opens the connections; nil uses a net.Dialer.
	Dialer dialer.Dialer
	// CloseDelay makes each Close wait this long before closing, as a
	// proxy or a slow network would; the connection counts as open until
	// its Close has returned.
	CloseDelay time.Duration

	opened, open, peak atomic.Int64
}

var _ dialer.Dialer = (*Dialer)(nil)

// DialContext dials and counts the connection.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd dialer.Dialer = &net.Dialer{}
	if d.Dialer != nil {
		nd = d.Dialer
	}
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.opened.Add(1)
	n := d.open.Add(1)
	for {
		p := d.peak.Load()
		if n <= p || d.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return &conn{Conn: c, d: d}, nil
}

// Opened returns the number of connections dialed successfully.
func (d *Dialer) Opened() int64 { return d.opened.Load() }

// Open returns the number of connections open now.
func (d *Dialer) Open() int64 { return d.open.Load() }

// Peak returns the largest number of connections that were open at once.
func (d *Dialer) Peak() int64 { return d.peak.Load() }

type conn struct {
	net.Conn
	d    *Dialer
	once sync.Once
}

func (c *conn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		if c.d.CloseDelay > 0 {
			time.Sleep(c.d.CloseDelay)
		}
		err = c.Conn.Close()
		c.d.open.Add(-1)
	})
	return err
}
