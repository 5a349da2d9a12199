package dataenc

import (
	"bufio"
	"io"
	"net/textproto"
	"testing"
)

var benchCases = []struct {
	name   string
	size   int
	ending string
}{
	{"CRLF/1KiB", 1 << 10, "\r\n"},
	{"CRLF/1MiB", 1 << 20, "\r\n"},
	{"LF/1KiB", 1 << 10, "\n"},
	{"LF/1MiB", 1 << 20, "\n"},
}

// BenchmarkDotWriter encodes one message per iteration into a bufio.Writer,
// as the transport does. The DotWriter is built once and Reset per message.
func BenchmarkDotWriter(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			text := typicalText(bc.size, bc.ending)
			bw := bufio.NewWriter(io.Discard)
			d := NewDotWriter(bw)
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				d.Reset(bw)
				d.Write(text)
				if err := d.Close(); err != nil {
					b.Fatal(err)
				}
				bw.Flush()
			}
		})
	}
}

// BenchmarkTextprotoDotWriter is the same work done by
// net/textproto.DotWriter, for comparison. It is not safe on bare CR input.
func BenchmarkTextprotoDotWriter(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			text := typicalText(bc.size, bc.ending)
			bw := bufio.NewWriter(io.Discard)
			tw := textproto.NewWriter(bw)
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				d := tw.DotWriter()
				d.Write(text)
				if err := d.Close(); err != nil { // Close flushes bw
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDotWriterSmallWrites feeds the 1 MiB text in 512-byte Writes.
func BenchmarkDotWriterSmallWrites(b *testing.B) {
	text := typicalText(1<<20, "\n")
	bw := bufio.NewWriter(io.Discard)
	d := NewDotWriter(bw)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		d.Reset(bw)
		for p := text; len(p) > 0; {
			n := min(512, len(p))
			d.Write(p[:n])
			p = p[n:]
		}
		d.Close()
		bw.Flush()
	}
}

// BenchmarkCRLFWriter normalises 1 MiB of LF text.
func BenchmarkCRLFWriter(b *testing.B) {
	text := typicalText(1<<20, "\n")
	bw := bufio.NewWriter(io.Discard)
	c := NewCRLFWriter(bw)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		c.Reset(bw)
		c.Write(text)
		c.Close()
		bw.Flush()
	}
}

// BenchmarkNewDotWriter reports the cost of construction, which allocates
// the 32 KiB buffer; Reset avoids it for later messages.
func BenchmarkNewDotWriter(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		d := NewDotWriter(io.Discard)
		d.Close()
	}
}
