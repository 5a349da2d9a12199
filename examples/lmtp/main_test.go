package main

import (
	"bytes"
	"context"
	"testing"
)

func TestLMTP(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, nil); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	want := `alice@example.org: accepted (250 2.0.0)
full@example.org: perm-failed (552 5.2.2)
bob@example.org: accepted (250 2.0.0)
delivered to 2 of 3 recipients
`
	if got := out.String(); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
}
