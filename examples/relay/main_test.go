package main

import (
	"bytes"
	"context"
	"testing"
)

func TestRelay(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, nil); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	want := `== profile local
  bob@example.org: accepted after 1 attempt(s)
== profile loopback
  bob@example.org: accepted after 1 attempt(s)
== profile pair
  bob@example.org: accepted after 2 attempt(s)
the relay with STARTTLS received a message for [bob@example.org] (TLS: true)
the relay without TLS received a message for [bob@example.org] (TLS: false)
the relay without TLS received a message for [bob@example.org] (TLS: false)
`
	if got := out.String(); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
}
