//go:build tools

// Package deps pins the modules the project's packages use while they are
// being written in parallel. It is never built.
package deps

import (
	_ "github.com/creack/pty"
	_ "github.com/emersion/go-sasl"
	_ "github.com/emersion/go-smtp"
	_ "github.com/hashicorp/go-multierror"
	_ "github.com/xdg-go/scram"
	_ "go.opentelemetry.io/otel"
	_ "go.opentelemetry.io/otel/metric"
	_ "go.opentelemetry.io/otel/sdk/metric"
	_ "go.opentelemetry.io/otel/sdk/trace"
	_ "go.opentelemetry.io/otel/trace"
	_ "go.yaml.in/yaml/v3"
	_ "golang.org/x/net/proxy"
	_ "golang.org/x/term"
	_ "golang.org/x/time/rate"
)
