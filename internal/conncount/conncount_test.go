package conncount_test

import (
	"context"
	"net"
	"testing"

	"github.com/mailwire/mailwire/internal/conncount"
)

func TestCounts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	var d conncount.Dialer
	a, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	a.Close() // counted once
	if d.Opened() != 2 || d.Open() != 1 || d.Peak() != 2 {
		t.Errorf("opened %d open %d peak %d, want 2 1 2", d.Opened(), d.Open(), d.Peak())
	}
	b.Close()
	if d.Open() != 0 {
		t.Errorf("open %d after closing both", d.Open())
	}
}
