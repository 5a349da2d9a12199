package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The chain, built in Go or from middleware.yaml, retries the recipient
// the server refused once, delivers one copy to each recipient, and prints
// a span with both attempts and no address.
func TestMiddleware(t *testing.T) {
	for _, args := range [][]string{nil, {"-config", "middleware.yaml"}} {
		var out bytes.Buffer
		if err := run(context.Background(), &out, args); err != nil {
			t.Fatalf("run %v: %v\n%s", args, err, out.String())
		}
		got := out.String()
		for _, want := range []string{
			`"Name": "smtp.send"`,
			`"Name": "smtp.attempt.start"`,
			`"Key": "smtp.attempts"`,
			"bob@example.org: accepted after 1 attempt(s)\n",
			"carol@example.org: accepted after 2 attempt(s)\n",
			"copies received: bob 1, carol 1\n",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("run %v: output lacks %q:\n%s", args, want, got)
			}
		}
		if n := strings.Count(got, `"Name": "smtp.attempt.start"`); n != 2 {
			t.Errorf("run %v: %d attempt events, want 2", args, n)
		}
		// Addresses appear in the program's own lines, never in the span.
		span := got[strings.Index(got, "{"):strings.LastIndex(got, "}")]
		if strings.Contains(span, "@example.org") {
			t.Errorf("run %v: the span records an address", args)
		}
	}
}
