package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/mailwire/mailwire/config"
)

func TestCustomMiddleware(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, nil); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	want := `the server received:
X-Sent-By: billing-service
From: billing@example.org
To: bob@example.org
Subject: Your invoice
`
	if got := out.String(); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
}

// The middleware's own checks name the file, line and key.
func TestStampParameterErrors(t *testing.T) {
	for _, tt := range []struct{ from, to, want string }{
		{"field: X-Sent-By", "field: X Sent By",
			`bad.yaml:13: profiles.stamped.middleware[0].with.field: "X Sent By" is not a header field name (printable ASCII without spaces or colons)`},
		{"value: billing-service", "valeu: billing-service",
			`bad.yaml:14: profiles.stamped.middleware[0].with.valeu: unknown key; did you mean value?`},
	} {
		data := strings.Replace(string(customMiddlewareYAML), tt.from, tt.to, 1)
		cfg, err := config.Parse("bad.yaml", []byte(data))
		if err == nil {
			_, err = cfg.Transport("")
		}
		if err == nil || err.Error() != tt.want {
			t.Errorf("error = %v, want %s", err, tt.want)
		}
	}
}
