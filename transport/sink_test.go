package transport_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
)

// startSink starts a minimal discarding SMTP server, like Postfix's
// smtp-sink, whose own cost is small enough that benchmarks measure the
// client. It offers PIPELINING and, if chunking, CHUNKING.
func startSink(tb testing.TB, chunking bool) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	ehlo := "250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 0\r\n"
	if chunking {
		ehlo += "250-CHUNKING\r\n"
	}
	ehlo += "250 ENHANCEDSTATUSCODES\r\n"
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveSink(c, ehlo)
		}
	}()
	return ln.Addr().String()
}

func serveSink(c net.Conn, ehlo string) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriterSize(c, 16<<10)
	w.WriteString("220 sink ESMTP\r\n")
	w.Flush()
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		switch {
		case hasPrefixFold(line, "EHLO"), hasPrefixFold(line, "LHLO"):
			w.WriteString(ehlo)
		case hasPrefixFold(line, "DATA"):
			w.WriteString("354 go\r\n")
			w.Flush()
			for {
				l, err := r.ReadSlice('\n')
				if err != nil {
					return
				}
				if bytes.Equal(l, []byte(".\r\n")) {
					break
				}
			}
			w.WriteString("250 2.0.0 ok\r\n")
		case hasPrefixFold(line, "BDAT"):
			f := bytes.Fields(line)
			n := 0
			for _, d := range f[1] {
				n = n*10 + int(d-'0')
			}
			if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
				return
			}
			w.WriteString("250 2.0.0 ok\r\n")
		case hasPrefixFold(line, "QUIT"):
			w.WriteString("221 bye\r\n")
			w.Flush()
			return
		default:
			w.WriteString("250 2.0.0 ok\r\n")
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

func hasPrefixFold(b []byte, p string) bool {
	if len(b) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		if b[i]|0x20 != p[i]|0x20 {
			return false
		}
	}
	return true
}
