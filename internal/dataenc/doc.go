// Package dataenc encodes message content for the SMTP DATA and BDAT
// commands.
//
// For DATA (RFC 5321 section 4.5.2) the content is sent as lines ending in
// CRLF, a line that starts with "." gets one more "." in front of it, and the
// data ends with a line holding a single ".". [DotWriter] does all three. For
// BDAT (RFC 3030) there is no dot-stuffing and no terminator, but 7BIT and
// 8BITMIME content must still use CRLF line endings; [CRLFWriter] does that.
// BINARYMIME content is sent as it is and needs neither writer.
//
// Both writers turn every bare LF and every bare CR into CRLF before any
// other step. Passing a bare LF or CR through is what makes SMTP smuggling
// possible: when servers along the path disagree on whether "\n.\n" or
// "\r.\r" ends the data, one of them reads what follows (for example "MAIL
// FROM:...") as new commands, and a forged second message is delivered that
// the first server never saw as one. The dot must also be stuffed on every
// line, including one that follows an empty line (missing that case was
// lettre's CVE-2021-38189) and one that follows a line ending the encoder
// itself produced. Go's net/textproto.DotWriter turns LF into CRLF but
// passes a bare CR through and does not stuff a dot after it, so mailwire
// does not use it.
//
// The output of [DotWriter] therefore always holds these properties: every
// CR is followed by LF, every LF is preceded by CR, no line before the last
// starts with a single ".", and the stream ends with CRLF "." CRLF (just
// "." CRLF for empty content), a sequence found nowhere else in it. The
// result does not depend on how the content is split into Write calls.
//
// [Decode] and [Normalize] exist for tests: Decode(encoded) returns what a
// conforming server stores, and it equals Normalize(original).
package dataenc
