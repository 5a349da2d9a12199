package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mailwire/mailwire/envelope"
)

// envSpec says where the envelope of a message comes from.
type envSpec struct {
	// from is the reverse-path given on the command line, if fromSet.
	from    string
	fromSet bool
	// fallbackFrom is the reverse-path when neither the command line nor
	// the header gives one, if hasFallback (the sendmail mode's USER@DOMAIN).
	fallbackFrom string
	hasFallback  bool
	// to, when not empty, replaces the recipients of the header.
	to []string
	// addTo is added to the recipients of the header (sendmail -t with
	// recipients as arguments).
	addTo []string
}

// rcptsSupplied reports whether the command line gives recipients.
func (s envSpec) rcptsSupplied() bool { return len(s.to) > 0 || len(s.addTo) > 0 }

// message is a message ready to send.
type message struct {
	env    *envelope.Envelope
	body   io.Reader // the message less its Bcc fields
	header []byte    // the header as read, for inspection only
}

// placeholder stands in for an address the command line supplies while the
// header is parsed; it never reaches the wire.
const placeholder = "placeholder@mailwire.invalid"

// recorder keeps what is read through it, up to max octets, so that a
// header that envelope.FromMessage refused can be read again.
type recorder struct {
	r        io.Reader
	buf      []byte
	max      int
	overflow bool
	off      bool
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if !r.off && n > 0 {
		if len(r.buf)+n > r.max {
			r.overflow = true
			r.off = true
			r.buf = nil
		} else {
			r.buf = append(r.buf, p[:n]...)
		}
	}
	return n, err
}

// prepareMessage reads the header of the message in r and returns the
// envelope to send it with and the reader of the message to send (without
// its Bcc and Resent-Bcc fields).
//
// envelope.FromMessage derives the envelope as smtplib's send_message does.
// When it fails, it returns no reader and has consumed part of r, so the
// header is recorded as it is read. Then:
//
//   - if the header has no sender (ErrNoSender) and the command line gives
//     one, or no recipients (ErrNoRecipients) and the command line gives
//     some, the header is parsed again with a placeholder field in front,
//     which is dropped from the result: the rest of the header still gives
//     what the command line does not, and FromMessage still removes Bcc;
//   - if an address field cannot be parsed but the command line gives both
//     the sender and the recipients, the header is not needed for the
//     envelope: the message is sent as it is, less its Bcc fields.
//
// Anything else, a header too large or with a bare CR or NUL above all, is
// an error.
func prepareMessage(r io.Reader, spec envSpec) (*message, error) {
	rec := &recorder{r: r, max: envelope.DefaultMaxHeader + 64<<10}
	env, body, err := envelope.FromMessage(rec)
	var prefix string
	for tries := 0; err != nil && tries < 2; tries++ {
		var ee *envelope.Error
		if !errors.As(err, &ee) || rec.overflow || ee.Field == "header" {
			break
		}
		var field string
		switch {
		case errors.Is(err, envelope.ErrNoSender) && (spec.fromSet || spec.hasFallback):
			field = ee.Field // "From" or "Resent-From"
		case errors.Is(err, envelope.ErrNoRecipients) && spec.rcptsSupplied():
			field = ee.Field // "To" or "Resent-To"
		}
		if field == "" {
			break
		}
		prefix = field + ": <" + placeholder + ">\r\n" + prefix
		replay := io.MultiReader(strings.NewReader(prefix), bytes.NewReader(bytes.Clone(rec.buf)), rec)
		env2, body2, err2 := envelope.FromMessage(replay)
		if err2 == nil {
			if _, cerr := io.CopyN(io.Discard, body2, int64(len(prefix))); cerr != nil {
				return nil, fmt.Errorf("reading the message: %w", cerr)
			}
			env, body, err = env2, body2, nil
			break
		}
		if errors.Is(err2, envelope.ErrMultipleResent) {
			break // the placeholder confused the Resent- blocks: report the original
		}
		err = err2
	}
	if err != nil && len(spec.to) > 0 && !rec.overflow {
		var ee *envelope.Error
		if errors.As(err, &ee) && ee.Field != "header" {
			// The header's recipients are not needed: send it as it is,
			// with the sender from the command line, else from the
			// header's Sender or From (which FromMessage reads before the
			// recipient fields), else the fallback.
			rec.off = true
			hdr, rest := splitHeader(rec.buf)
			from, ok := placeholder, spec.fromSet
			if !ok {
				from, ok = headerSender(hdr)
			}
			if !ok && spec.hasFallback {
				from, ok = placeholder, true
			}
			if ok {
				env = &envelope.Envelope{From: from, Body: bodyType(hdr)}
				body = io.MultiReader(bytes.NewReader(stripBcc(hdr)), bytes.NewReader(rest), r)
				err = nil
			}
		}
	}
	rec.off = true
	var header []byte
	if !rec.overflow {
		h, _ := splitHeader(rec.buf)
		header = bytes.Clone(h)
	}
	rec.buf = nil
	if err != nil {
		return nil, err
	}
	switch {
	case spec.fromSet:
		env.From = spec.from
	case env.From == placeholder:
		env.From = spec.fallbackFrom
	}
	if len(spec.to) > 0 {
		env.To = env.To[:0]
		for _, a := range spec.to {
			env.To = append(env.To, envelope.Recipient{Addr: a})
		}
	}
	if len(spec.addTo) > 0 {
		seen := map[string]bool{}
		for _, r := range env.To {
			seen[strings.ToLower(r.Addr)] = true
		}
		for _, a := range spec.addTo {
			if !seen[strings.ToLower(a)] {
				seen[strings.ToLower(a)] = true
				env.To = append(env.To, envelope.Recipient{Addr: a})
			}
		}
	}
	env.UTF8 = false
	env.UTF8 = env.NeedsUTF8()
	if err := env.Validate(); err != nil {
		return nil, err
	}
	return &message{env: env, body: body, header: header}, nil
}

// recipientFields are the fields whose addresses headerSender ignores.
var recipientFields = []string{"To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc"}

// headerSender returns the reverse-path the header gives, as
// envelope.FromMessage derives it (Sender, else From; Resent-Sender, else
// Resent-From with one Resent- block), whatever its recipient fields hold:
// their values are replaced by a valid address, so that one that cannot be
// parsed does not hide the sender. ok is false when the header gives no
// usable sender.
func headerSender(header []byte) (from string, ok bool) {
	var b []byte
	last := 0
	headerFields(header, func(name string, start, end int) {
		for _, f := range recipientFields {
			if strings.EqualFold(name, f) {
				// The same field name keeps the Resent- blocks as they are.
				b = append(b, header[last:start]...)
				b = append(b, name+": <"+placeholder+">\r\n"...)
				last = end
				return
			}
		}
	})
	b = append(b, header[last:]...)
	env, _, err := envelope.FromMessage(bytes.NewReader(b))
	var ee *envelope.Error
	if errors.Is(err, envelope.ErrNoRecipients) && errors.As(err, &ee) {
		// No recipient field at all: add one where the sender is looked
		// for ("To", or "Resent-To" with a Resent- block).
		b = append([]byte(ee.Field+": <"+placeholder+">\r\n"), b...)
		env, _, err = envelope.FromMessage(bytes.NewReader(b))
	}
	if err != nil || env.From == placeholder {
		return "", false
	}
	return env.From, true
}

// splitHeader splits b after the empty line that ends the header; the
// header is all of b when there is none.
func splitHeader(b []byte) (header, rest []byte) {
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		line := b[i : i+j+1]
		i += j + 1
		if len(line) == 1 || len(line) == 2 && line[0] == '\r' {
			return b[:i], b[i:]
		}
	}
	return b, nil
}

// headerFields calls fn for each field of header with its name and its
// extent, continuation lines included.
func headerFields(header []byte, fn func(name string, start, end int)) {
	name, start := "", -1
	flush := func(end int) {
		if start >= 0 {
			fn(name, start, end)
		}
		start = -1
	}
	for i := 0; i < len(header); {
		end := len(header)
		if j := bytes.IndexByte(header[i:], '\n'); j >= 0 {
			end = i + j + 1
		}
		line := header[i:end]
		switch {
		case line[0] == ' ' || line[0] == '\t':
			// continuation of the current field, if any
		case line[0] == '\r' || line[0] == '\n':
			flush(i)
		default:
			flush(i)
			if c := bytes.IndexByte(line, ':'); c > 0 {
				name, start = strings.TrimRight(string(line[:c]), " \t"), i
			}
		}
		i = end
	}
	flush(len(header))
}

// stripBcc returns header without its Bcc and Resent-Bcc fields.
func stripBcc(header []byte) []byte {
	var out []byte
	last := 0
	headerFields(header, func(name string, start, end int) {
		if strings.EqualFold(name, "Bcc") || strings.EqualFold(name, "Resent-Bcc") {
			out = append(out, header[last:start]...)
			last = end
		}
	})
	if last == 0 {
		return header
	}
	return append(out, header[last:]...)
}

// hasField reports whether header has a field called name.
func hasField(header []byte, name string) bool {
	found := false
	headerFields(header, func(n string, _, _ int) {
		if strings.EqualFold(n, name) {
			found = true
		}
	})
	return found
}

// bodyType returns the BODY= parameter that header implies, as
// envelope.FromMessage would.
func bodyType(header []byte) envelope.BodyType {
	var bt envelope.BodyType
	first := true
	headerFields(header, func(name string, start, end int) {
		if !first || !strings.EqualFold(name, "Content-Transfer-Encoding") {
			return
		}
		first = false
		v := string(header[start:end])
		v = strings.TrimSpace(v[strings.IndexByte(v, ':')+1:])
		if i := strings.IndexAny(v, " \t(;\r\n"); i >= 0 {
			v = v[:i]
		}
		switch {
		case strings.EqualFold(v, "binary"):
			bt = envelope.BodyBinaryMIME
		case strings.EqualFold(v, "8bit"):
			bt = envelope.Body8BitMIME
		}
	})
	if bt == "" {
		for _, c := range header {
			if c >= 0x80 {
				return envelope.Body8BitMIME
			}
		}
	}
	return bt
}
