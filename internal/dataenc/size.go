package dataenc

import "io"

// Scan reads r to its end and returns the size its content has once the
// writers of this package have made every line ending CRLF (a bare CR or LF
// becomes CRLF, and CRLF is appended to a last line without one), which is
// the size RFC 1870 declares: without dot-stuffing and without the final
// dot. It also reports whether the content holds a byte of 0x80 or above.
// buf is the read buffer; it must not be empty.
func Scan(r io.Reader, buf []byte) (size int64, eightBit bool, err error) {
	prevCR, bol := false, true
	for {
		n, rerr := r.Read(buf)
		for _, c := range buf[:n] {
			switch {
			case c == '\r':
				size += 2 // written as CRLF, whatever follows
				prevCR, bol = true, true
			case c == '\n':
				if !prevCR {
					size += 2
				}
				prevCR, bol = false, true
			default:
				size++
				prevCR, bol = false, false
				if c >= 0x80 {
					eightBit = true
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return 0, false, rerr
		}
	}
	if !bol {
		size += 2
	}
	return size, eightBit, nil
}
