package interoptest

import (
	"bytes"
	"fmt"
	"strings"
)

// AddedHeaderNames are the header fields that the interop servers prepend to
// a message when they deliver it: Postfix's smtpd and virtual(8) add
// Received, Return-Path, X-Original-To and Delivered-To; Dovecot's LMTP adds
// Return-Path, Delivered-To and Received. Nothing else is changed: Postfix is
// configured not to rewrite headers, add missing ones, convert 8-bit bodies
// or fold long lines.
var AddedHeaderNames = []string{"Return-Path", "Delivered-To", "Received", "X-Original-To"}

// ToLF replaces every CRLF in b with LF, as maildir storage does. A CR not
// followed by LF is kept.
func ToLF(b []byte) []byte {
	return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
}

// StripAddedHeaders removes from the top of delivered the header fields that
// the server prepended (see [AddedHeaderNames]), with their continuation
// lines, and returns the rest. It stops at the first other field, and also as
// soon as the rest equals original (with or without CRLF converted to LF),
// so that an original that starts with one of those fields keeps it. A nil
// original strips every leading added field.
func StripAddedHeaders(delivered, original []byte) []byte {
	origLF := ToLF(original)
	rest := delivered
	for {
		if original != nil && (bytes.Equal(rest, original) || bytes.Equal(rest, origLF)) {
			return rest
		}
		n := addedFieldLen(rest)
		if n == 0 {
			return rest
		}
		rest = rest[n:]
	}
}

// addedFieldLen returns the length of the header field at the start of b,
// including its line end and continuation lines, if its name is one of
// AddedHeaderNames; otherwise 0.
func addedFieldLen(b []byte) int {
	colon := bytes.IndexByte(b, ':')
	if colon <= 0 {
		return 0
	}
	name := string(b[:colon])
	added := false
	for _, h := range AddedHeaderNames {
		if strings.EqualFold(name, h) {
			added = true
			break
		}
	}
	if !added {
		return 0
	}
	n := 0
	for {
		eol := bytes.IndexByte(b[n:], '\n')
		if eol < 0 {
			return 0 // a header field without a line end is not a prepended one
		}
		n += eol + 1
		if n >= len(b) || (b[n] != ' ' && b[n] != '\t') {
			return n
		}
	}
}

// BodyAfterHeaders returns what follows the header block of msg: the bytes
// after the first empty line (ending in CRLF or in a bare LF). It returns
// nil if msg has no empty line.
func BodyAfterHeaders(msg []byte) []byte {
	start := 0 // start of the current line
	for start <= len(msg) {
		rest := msg[start:]
		if bytes.HasPrefix(rest, []byte("\r\n")) {
			return rest[2:]
		}
		if bytes.HasPrefix(rest, []byte("\n")) {
			return rest[1:]
		}
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			return nil
		}
		start += nl + 1
	}
	return nil
}

// CompareDelivered checks that delivered (a message as a server stored it)
// is original apart from the header fields the server prepended. Maildirs
// store LF line endings, so original is compared with its CRLFs turned into
// LFs, and also as it is (the ledger stores CRLF). Remember that an SMTP
// client adds a final CRLF to a message that lacks one. The error describes
// the first difference.
func CompareDelivered(delivered, original []byte) error {
	got := StripAddedHeaders(delivered, original)
	if bytes.Equal(got, original) {
		return nil
	}
	want := ToLF(original)
	if bytes.Equal(got, want) {
		return nil
	}
	if bytes.Contains(got, []byte("\r\n")) {
		want = original
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Errorf("delivered message differs from the original at byte %d (after removing %d bytes of added headers; %d bytes delivered, %d expected): got %q, want %q",
		i, len(delivered)-len(got), len(got), len(want), around(got, i), around(want, i))
}

// around returns up to 40 bytes of b on each side of offset i.
func around(b []byte, i int) []byte {
	lo, hi := i-40, i+40
	if lo < 0 {
		lo = 0
	}
	if hi > len(b) {
		hi = len(b)
	}
	if lo > hi {
		lo = hi
	}
	return b[lo:hi]
}
