package faultproxy

import (
	"bytes"
	"strconv"
	"strings"
)

// A Reply is one server reply in a recorded server-to-client stream.
type Reply struct {
	Code       int   // basic code; 0 if malformed
	Start, End int64 // byte offsets in the stream; End is exclusive
	Complete   bool  // the final line ended with LF
}

// A Step is one command of a recorded client-to-server stream with the
// replies that answer it.
type Step struct {
	// Verb is the command's verb in upper case, or "GREETING" (no client
	// bytes), "AUTH-RESPONSE" (a line answering a 334 challenge), "." (the
	// message data with its final dot, or a BDAT ... LAST chunk with its
	// payload) or "BDAT" (an intermediate chunk with its payload).
	Verb string
	// Line is the command line without CRLF ("" for the greeting and for
	// DATA content).
	Line string
	// Start and End delimit the step's bytes in the client-to-server
	// stream (End exclusive): the command line, or the data and its final
	// dot, or a BDAT line and its payload.
	Start, End int64
	// Complete reports that all of the step's bytes are in the stream.
	Complete bool
	// Replies are the replies that answer the step, in order: usually one,
	// one per accepted recipient for LMTP's end of data, none if the
	// stream ends before them.
	Replies []Reply
	// Want is how many replies the step needs.
	Want int
}

// Answered reports whether every reply the step needs is complete in the
// stream.
func (s Step) Answered() bool {
	if len(s.Replies) < s.Want {
		return false
	}
	for _, r := range s.Replies {
		if !r.Complete {
			return false
		}
	}
	return true
}

// ReplyEnd returns the offset just past the step's last needed reply, or
// -1 if not all of them are in the stream.
func (s Step) ReplyEnd() int64 {
	if !s.Answered() || s.Want == 0 {
		return -1
	}
	return s.Replies[s.Want-1].End
}

// Session is a recorded session split into steps.
type Session struct {
	Steps   []Step
	Replies []Reply
	// Opaque reports that the streams turned to TLS after a STARTTLS and
	// the analysis stopped there.
	Opaque bool
}

// AnalyzeOptions configure [Analyze].
type AnalyzeOptions struct {
	// LMTP expects one reply per accepted recipient at the end of the data.
	LMTP bool
	// StopAtTLS stops after a STARTTLS answered 220: the recording is
	// ciphertext from there on (a proxy that does not intercept TLS).
	StopAtTLS bool
}

// ParseReplies splits a server-to-client stream into replies; a reply cut
// short is returned last with Complete false.
func ParseReplies(down []byte) []Reply {
	var out []Reply
	var cur *Reply
	pos := int64(0)
	for len(down) > 0 {
		i := bytes.IndexByte(down, '\n')
		line := down
		complete := i >= 0
		if complete {
			line = down[:i+1]
		}
		if cur == nil {
			out = append(out, Reply{Code: replyCode(line), Start: pos})
			cur = &out[len(out)-1]
		}
		pos += int64(len(line))
		cur.End = pos
		down = down[len(line):]
		if !complete {
			break
		}
		if finalLine(line) {
			cur.Complete = true
			cur = nil
		}
	}
	return out
}

// Analyze pairs the commands of a recorded client-to-server stream with
// the replies of the server-to-client stream, in order (as pipelining
// keeps them), following DATA content, BDAT payloads, AUTH challenges and
// LMTP's per-recipient replies.
func Analyze(up, down []byte, o AnalyzeOptions) *Session {
	s := &Session{Replies: ParseReplies(down)}
	ri := 0
	take := func(st *Step, n int) {
		st.Want = n
		for k := 0; k < n && ri < len(s.Replies); k++ {
			st.Replies = append(st.Replies, s.Replies[ri])
			ri++
		}
	}
	g := Step{Verb: "GREETING", Complete: true}
	take(&g, 1)
	s.Steps = append(s.Steps, g)

	var (
		pos    int64
		inAuth bool
		rcpts  int
	)
	n := int64(len(up))
	for pos < n {
		i := bytes.IndexByte(up[pos:], '\n')
		end := n
		complete := i >= 0
		if complete {
			end = pos + int64(i) + 1
		}
		line := strings.TrimRight(string(up[pos:end]), "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		if inAuth {
			verb = "AUTH-RESPONSE"
		}
		st := Step{Verb: verb, Line: line, Start: pos, End: end, Complete: complete}
		pos = end
		if verb == "BDAT" {
			f := strings.Fields(arg)
			size := int64(0)
			if len(f) > 0 {
				size, _ = strconv.ParseInt(f[0], 10, 64)
			}
			last := len(f) > 1 && strings.EqualFold(f[1], "LAST")
			st.End = min(end+size, n)
			st.Complete = complete && end+size <= n
			pos = st.End
			want := 1
			if last {
				st.Verb = "."
				if o.LMTP {
					want = rcpts
				}
				rcpts = 0
			}
			take(&st, want)
			s.Steps = append(s.Steps, st)
			continue
		}
		take(&st, 1)
		var rep *Reply
		if len(st.Replies) > 0 {
			rep = &st.Replies[0]
		}
		s.Steps = append(s.Steps, st)
		switch verb {
		case "AUTH", "AUTH-RESPONSE":
			inAuth = rep != nil && rep.Code == 334
		case "MAIL", "RSET", "EHLO", "HELO", "LHLO":
			rcpts = 0
		case "RCPT":
			if rep != nil && rep.Complete && rep.Code >= 200 && rep.Code < 300 {
				rcpts++
			}
		case "STARTTLS":
			if o.StopAtTLS && rep != nil && rep.Complete && rep.Code == 220 {
				s.Opaque = true
				return s
			}
		case "DATA":
			// Data follows a 354; when the reply is not in the recording, a
			// correct client has sent data only if it got one.
			if rep != nil && rep.Complete && rep.Code != 354 {
				continue
			}
			if pos >= n {
				continue
			}
			d := Step{Verb: ".", Start: pos}
			if bytes.HasPrefix(up[pos:], []byte(".\r\n")) {
				d.End, d.Complete = pos+3, true
			} else if k := bytes.Index(up[pos:], []byte("\r\n.\r\n")); k >= 0 {
				d.End, d.Complete = pos+int64(k)+5, true
			} else {
				d.End = n
			}
			pos = d.End
			want := 1
			if o.LMTP {
				want = rcpts
			}
			rcpts = 0
			take(&d, want)
			s.Steps = append(s.Steps, d)
		}
	}
	return s
}

// Find returns the index of the first step with the verb at or after
// from, or -1.
func (s *Session) Find(verb string, from int) int {
	for i := max(from, 0); i < len(s.Steps); i++ {
		if s.Steps[i].Verb == verb {
			return i
		}
	}
	return -1
}

// Verbs returns the steps' verbs, for messages.
func (s *Session) Verbs() []string {
	out := make([]string, len(s.Steps))
	for i, st := range s.Steps {
		out[i] = st.Verb
	}
	return out
}
