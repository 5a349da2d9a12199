package envelope

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
)

// DefaultMaxHeader is the header size limit of [FromMessage], in octets: 1 MiB,
// far above any real header (RFC 5322 puts no limit on the number of
// fields), low enough that a message without a header/body separator cannot
// make FromMessage buffer a large body.
const DefaultMaxHeader = 1 << 20

// readBufSize is the read-ahead of FromMessage: the most it reads from msg
// beyond the header before the returned reader is read.
const readBufSize = 4096

// FromMessage reads the header of msg and returns the envelope it implies,
// following Python smtplib's send_message, and a reader of the message to
// send. It is [FromMessageLimit] with the [DefaultMaxHeader] limit.
func FromMessage(msg io.Reader) (*Envelope, io.Reader, error) {
	return FromMessageLimit(msg, DefaultMaxHeader)
}

// FromMessageLimit is [FromMessage] with a header size limit of maxHeader
// octets (the blank line that ends the header included); maxHeader <= 0
// means [DefaultMaxHeader].
//
// The header is everything up to the first empty line, or all of msg if
// there is none; lines may end in CRLF or a bare LF, and folded fields
// (continuation lines starting with a space or tab) are unfolded. Field names
// are matched ignoring case and any whitespace before the colon.
//
// The envelope follows smtplib's send_message:
//
//   - Resent- fields (Resent-Date, Resent-From, Resent-Sender, Resent-To,
//     Resent-Cc, Resent-Bcc, Resent-Message-ID) form blocks: a field whose
//     name already occurs in the current block starts a new one, so every
//     Resent-Date after the first starts one, as in smtplib, which counts
//     Resent-Date fields. More than one block is an error wrapping
//     [ErrMultipleResent], since nothing says which block is the latest.
//   - With exactly one block, the reverse-path is the first mailbox of
//     Resent-Sender, else of Resent-From, and the recipients are the
//     mailboxes of Resent-To, then Resent-Cc, then Resent-Bcc. The other
//     address fields are ignored.
//   - Without one, the reverse-path is the first mailbox of Sender, else of
//     From (so a From listing several authors gives its first), and the
//     recipients are the mailboxes of To, then Cc, then Bcc.
//
// A field that yields no mailbox (an empty Sender, a group such as
// "undisclosed-recipients:;") counts as absent. All occurrences of a field
// are used, in header order. A recipient that occurs again (same local part,
// domain compared ignoring ASCII case) is kept at its first occurrence only.
// Address lists may use display names (encoded or not: they are skipped),
// groups, comments and quoted local parts; quoted local parts are sent in
// the least-quoted form (RFC 5321 section 4.1.2).
//
// Every address extracted passes the [Envelope.Validate] rules; when one does
// not, or a field cannot be parsed, the error is an [*Error] whose Field is
// the header field name ("Resent-To") and whose Err is [ErrMalformed],
// [ErrControlChar] or [ErrTooLong]. No mailbox for the reverse-path is an
// error wrapping [ErrNoSender], no recipient one wrapping [ErrNoRecipients].
// A header larger than the limit is an error wrapping [ErrHeaderTooLarge]
// (Field "header"), and so is, wrapping [ErrControlChar], a header holding a
// NUL or a CR that does not end a line: a receiver that took the bare CR for
// a line break could otherwise see a field, a Bcc for instance, that
// FromMessage did not.
//
// UTF8 is set when an extracted address is not ASCII (RFC 6532). Body is
// set to [Body8BitMIME] when the header holds octets above 0x7F or the
// top-level Content-Transfer-Encoding is 8bit, and to [BodyBinaryMIME] when
// it is binary; the body itself is not inspected. Size is left 0.
//
// The returned reader yields msg with every Bcc and Resent-Bcc field
// (continuation lines included) removed and every other octet unchanged,
// line endings included. Only the header is held in memory, with a 4096-octet
// read-ahead buffer: FromMessage reads little of the body, and the rest is
// read from msg as the returned reader is read, never copied into memory as a
// whole. On error msg has been partly read.
//
// When msg can seek (an *os.File of a regular file, a *strings.Reader), the
// returned reader also has a method Reopen() (io.Reader, error), which
// returns a new reader of the same stripped message from its start: the
// retry middleware (its Reopener) and Failover use it to send the message
// again. A message from a pipe or a terminal cannot be read again.
func FromMessageLimit(msg io.Reader, maxHeader int) (*Envelope, io.Reader, error) {
	if maxHeader <= 0 {
		maxHeader = DefaultMaxHeader
	}
	start := int64(-1)
	if s, ok := msg.(io.Seeker); ok {
		// A pipe or a terminal is an *os.File that cannot seek.
		if off, err := s.Seek(0, io.SeekCurrent); err == nil {
			start = off
		}
	}
	br := bufio.NewReaderSize(msg, readBufSize)
	raw, err := readHeader(br, maxHeader)
	if err != nil {
		return nil, nil, err
	}
	h, err := parseHeader(raw)
	if err != nil {
		return nil, nil, err
	}
	env, err := h.envelope()
	if err != nil {
		return nil, nil, err
	}
	stripped := h.stripped()
	body := io.MultiReader(bytes.NewReader(stripped), br)
	if start >= 0 {
		return env, &messageBody{Reader: body, src: msg.(io.ReadSeeker), body: start + int64(len(raw)), header: stripped}, nil
	}
	return env, body, nil
}

// messageBody is the reader FromMessage returns for a message that can
// seek: it can be read again from its start, with the same fields
// removed, by Reopen.
type messageBody struct {
	io.Reader
	src    io.ReadSeeker
	body   int64  // offset of the body in src
	header []byte // the header as sent
}

// Reopen returns a reader of the message from its start, as FromMessage's
// reader was when it was returned; it seeks the message FromMessage was
// given, so a reader obtained before must not be read afterwards. It is
// the method of the retry middleware's Reopener: a retry can send the
// message again.
func (m *messageBody) Reopen() (io.Reader, error) {
	if _, err := m.src.Seek(m.body, io.SeekStart); err != nil {
		return nil, err
	}
	return io.MultiReader(bytes.NewReader(m.header), m.src), nil
}

// readHeader reads from br up to and including the first empty line, or to
// the end of br, and at most max octets.
func readHeader(br *bufio.Reader, max int) ([]byte, error) {
	var raw []byte
	lineStart := 0
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > max-len(raw) {
			return nil, &Error{Field: "header", Err: ErrHeaderTooLarge}
		}
		raw = append(raw, chunk...)
		switch err {
		case nil:
			line := raw[lineStart:]
			if len(line) == 1 || len(line) == 2 && line[0] == '\r' {
				return raw, nil
			}
			lineStart = len(raw)
		case bufio.ErrBufferFull:
			// A line longer than the buffer: read on.
		case io.EOF:
			return raw, nil
		default:
			return nil, fmt.Errorf("envelope: reading the message header: %w", err)
		}
	}
}

// field is one header field: its name as written (trailing whitespace
// removed) and its lines, raw[start:end].
type field struct {
	name       string
	start, end int
}

// header is a parsed message header.
type header struct {
	raw    []byte
	fields []field
}

// parseHeader splits raw, as returned by readHeader, into fields. Lines that
// are not fields (no colon, or a name that is not printable ASCII) and
// continuation lines without a field are kept but not parsed.
func parseHeader(raw []byte) (*header, error) {
	for i, c := range raw {
		if c == 0 || c == '\r' && (i+1 == len(raw) || raw[i+1] != '\n') {
			return nil, &Error{Field: "header", Err: ErrControlChar}
		}
	}
	h := &header{raw: raw}
	cur := -1 // index in h.fields of the field continuation lines belong to
	for i := 0; i < len(raw); {
		end := len(raw)
		if j := bytes.IndexByte(raw[i:], '\n'); j >= 0 {
			end = i + j + 1
		}
		line := raw[i:end]
		switch {
		case line[0] == '\n' || line[0] == '\r':
			// The empty line that ends the header.
		case line[0] == ' ' || line[0] == '\t':
			if cur >= 0 {
				h.fields[cur].end = end
			}
		default:
			cur = -1
			if name, ok := fieldName(line); ok {
				h.fields = append(h.fields, field{name: name, start: i, end: end})
				cur = len(h.fields) - 1
			}
		}
		i = end
	}
	return h, nil
}

// fieldName returns the name of the field that line starts, if it does.
func fieldName(line []byte) (string, bool) {
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		return "", false
	}
	name := bytes.TrimRight(line[:colon], " \t")
	if len(name) == 0 {
		return "", false
	}
	for _, c := range name {
		if c < '!' || c > '~' {
			return "", false
		}
	}
	return string(name), true
}

// value returns the unfolded body of f: the text after the colon with the
// line breaks removed.
func (h *header) value(f field) string {
	v := h.raw[f.start:f.end]
	v = v[bytes.IndexByte(v, ':')+1:]
	b := make([]byte, 0, len(v))
	for _, c := range v {
		if c != '\r' && c != '\n' {
			b = append(b, c)
		}
	}
	return string(b)
}

// isBcc reports whether a field of this name must not be transmitted.
func isBcc(name string) bool {
	return strings.EqualFold(name, "Bcc") || strings.EqualFold(name, "Resent-Bcc")
}

// stripped returns the header without its Bcc and Resent-Bcc fields.
func (h *header) stripped() []byte {
	var out []byte
	last := 0
	for _, f := range h.fields {
		if !isBcc(f.name) {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(h.raw))
		}
		out = append(out, h.raw[last:f.start]...)
		last = f.end
	}
	if out == nil {
		return h.raw
	}
	return append(out, h.raw[last:]...)
}

// resentFields are the fields of a Resent- block, in canonical spelling.
var resentFields = []string{
	"Resent-Date", "Resent-From", "Resent-Sender", "Resent-To",
	"Resent-Cc", "Resent-Bcc", "Resent-Message-ID",
}

// canonicalResent returns the canonical spelling of a Resent- block field
// name, or "".
func canonicalResent(name string) string {
	for _, r := range resentFields {
		if strings.EqualFold(name, r) {
			return r
		}
	}
	return ""
}

// envelope derives the envelope from the header.
func (h *header) envelope() (*Envelope, error) {
	prefix, err := h.resentPrefix()
	if err != nil {
		return nil, err
	}
	env := &Envelope{}

	from, err := h.firstMailbox(prefix + "Sender")
	if err == nil && from == "" {
		from, err = h.firstMailbox(prefix + "From")
	}
	if err != nil {
		return nil, err
	}
	if from == "" {
		return nil, &Error{Field: prefix + "From", Err: ErrNoSender}
	}
	env.From = from

	seen := make(map[string]bool)
	for _, name := range []string{prefix + "To", prefix + "Cc", prefix + "Bcc"} {
		for _, f := range h.fields {
			if !strings.EqualFold(f.name, name) {
				continue
			}
			addrs, err := h.mailboxes(f, name)
			if err != nil {
				return nil, err
			}
			for _, a := range addrs {
				key := dedupKey(a)
				if seen[key] {
					continue
				}
				seen[key] = true
				env.To = append(env.To, Recipient{Addr: a})
			}
		}
	}
	if len(env.To) == 0 {
		return nil, &Error{Field: prefix + "To", Err: ErrNoRecipients}
	}

	env.UTF8 = env.NeedsUTF8()
	env.Body = h.bodyType()
	// Every address was checked as it was extracted; this is the last line
	// of defence, and keeps FromMessage and Validate from ever disagreeing.
	if err := env.Validate(); err != nil {
		return nil, err
	}
	return env, nil
}

// resentPrefix returns "Resent-" if the header has exactly one Resent- block,
// "" if it has none, and an error if it has several.
func (h *header) resentPrefix() (string, error) {
	blocks := 0
	var inBlock []string
	for _, f := range h.fields {
		name := canonicalResent(f.name)
		if name == "" {
			continue
		}
		for _, n := range inBlock {
			if n == name {
				inBlock = inBlock[:0]
				break
			}
		}
		if len(inBlock) == 0 {
			blocks++
			if blocks > 1 {
				return "", &Error{Field: name, Err: ErrMultipleResent}
			}
		}
		inBlock = append(inBlock, name)
	}
	if blocks == 1 {
		return "Resent-", nil
	}
	return "", nil
}

// firstMailbox returns the first mailbox of the fields called name, or "".
func (h *header) firstMailbox(name string) (string, error) {
	for _, f := range h.fields {
		if !strings.EqualFold(f.name, name) {
			continue
		}
		addrs, err := h.mailboxes(f, name)
		if err != nil {
			return "", err
		}
		if len(addrs) > 0 {
			return addrs[0], nil
		}
	}
	return "", nil
}

// mailboxes parses the address list in f and checks every address; errors
// name the field by its canonical name.
func (h *header) mailboxes(f field, name string) ([]string, error) {
	addrs, err := parseAddressList(h.value(f))
	if err != nil {
		return nil, &Error{Field: name, Err: err}
	}
	for _, a := range addrs {
		if err := checkMailbox(a, true); err != nil {
			return nil, &Error{Field: name, Err: err}
		}
	}
	return addrs, nil
}

// dedupKey returns the identity of a recipient address: the local part as
// is (it may be case-sensitive) and the domain in ASCII lower case.
func dedupKey(addr string) string {
	local, domain, _ := splitMailbox(addr)
	return local + "@" + asciiLower(domain)
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// bodyType returns the BODY= value the header implies.
func (h *header) bodyType() BodyType {
	for _, f := range h.fields {
		if !strings.EqualFold(f.name, "Content-Transfer-Encoding") {
			continue
		}
		v := strings.TrimLeft(h.value(f), " \t")
		if i := strings.IndexAny(v, " \t(;"); i >= 0 {
			v = v[:i]
		}
		switch {
		case strings.EqualFold(v, "binary"):
			return BodyBinaryMIME
		case strings.EqualFold(v, "8bit"):
			return Body8BitMIME
		}
		break // only the first one counts
	}
	for _, c := range h.raw {
		if c >= 0x80 {
			return Body8BitMIME
		}
	}
	return ""
}
