package transport_test

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// BenchmarkSend1KiBReusedConn sends 1 KiB messages over one connection to
// the in-process server. Its allocations per message are those of the
// client and the server together.
func BenchmarkSend1KiBReusedConn(b *testing.B) {
	srv := smtptest.NewUnstartedServer()
	srv.Security = transport.Plaintext
	srv.DiscardData = true
	srv.Start()
	defer srv.Close()
	c, err := srv.Transport().Dial(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	body := "Subject: bench\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 16)
	env := envelope.New("sender@example.org", "rcpt@example.org")
	r := strings.NewReader(body)
	ctx := context.Background()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(body)
		if _, err := c.Send(ctx, env, r); err != nil {
			b.Fatal(err)
		}
		srv.Reset()
	}
}

// BenchmarkSendLarge streams a generated message of the given size. B/op
// must not grow with the size: the body is never held in memory.
func BenchmarkSendLarge(b *testing.B) {
	for _, size := range []int64{1 << 20, 50 << 20} {
		b.Run(sizeName(size), func(b *testing.B) {
			srv := smtptest.NewUnstartedServer()
			srv.Security = transport.Plaintext
			srv.DiscardData = true
			srv.Start()
			defer srv.Close()
			tr := srv.Transport()
			env := envelope.New("sender@example.org", "rcpt@example.org")
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tr.Send(context.Background(), env, &genReader{left: size}); err != nil {
					b.Fatal(err)
				}
				srv.Reset()
			}
		})
	}
}

func sizeName(n int64) string {
	if n >= 1<<20 {
		return strconv.FormatInt(n>>20, 10) + "MiB"
	}
	return strconv.FormatInt(n>>10, 10) + "KiB"
}

// genReader yields size bytes of text lines without holding them.
type genReader struct{ left int64 }

const genLine = "The quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJ\r\n"

func (g *genReader) Read(p []byte) (int, error) {
	if g.left <= 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && g.left > 0 {
		c := copy(p[n:], genLine)
		if int64(c) > g.left {
			c = int(g.left)
		}
		n += c
		g.left -= int64(c)
	}
	return n, nil
}

// BenchmarkClient1KiB measures the client alone against a minimal sink
// server: one transaction per Send on a warm connection, and the batch API.
func BenchmarkClient1KiB(b *testing.B) {
	body := "Subject: bench\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 16)
	for _, bdat := range []bool{false, true} {
		name := "DATA"
		if bdat {
			name = "BDAT"
		}
		b.Run(name+"/Send", func(b *testing.B) {
			addr := startSink(b, bdat)
			tr := &transport.SMTP{Addr: addr, Security: transport.Plaintext, LocalName: "bench.example"}
			defer tr.Close()
			c, err := tr.Dial(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			env := envelope.New("sender@example.org", "rcpt@example.org")
			r := strings.NewReader(body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(body)
				if _, err := c.Send(context.Background(), env, r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/Batch", func(b *testing.B) {
			addr := startSink(b, bdat)
			tr := &transport.SMTP{Addr: addr, Security: transport.Plaintext, LocalName: "bench.example"}
			defer tr.Close()
			c, err := tr.Dial(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			env := envelope.New("sender@example.org", "rcpt@example.org")
			readers := make([]strings.Reader, 64)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			msgs := func(yield func(transport.Message) bool) {
				for i := 0; i < b.N; i++ {
					r := &readers[i%len(readers)]
					r.Reset(body)
					if !yield(transport.Message{Envelope: env, Body: r}) {
						return
					}
				}
			}
			if err := c.SendBatch(context.Background(), msgs, func(_ int, _ *transport.Result, err error) {
				if err != nil {
					b.Error(err)
				}
			}); err != nil {
				b.Fatal(err)
			}
		})
	}
}
