package otelsmtp_test

import (
	"context"
	"fmt"
	"io"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/middleware/otelsmtp"
	"github.com/mailwire/mailwire/smtptrace"
	"github.com/mailwire/mailwire/transport"
)

func ExampleNew() {
	// The application owns the SDK; here spans go to an in-memory recorder.
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())

	// A stand-in for an SMTP transport, reporting its phases as a real one
	// does.
	server := transport.Func(func(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
		smtptrace.Start(ctx, smtptrace.PhaseMail, -1)
		smtptrace.Done(ctx, smtptrace.PhaseMail, smtptrace.PhaseInfo{Index: -1, Code: 250})
		res := &transport.Result{Reply: &transport.Reply{Code: 250, EnhancedCode: transport.EnhancedCode{2, 0, 0}, Text: "queued"}}
		for i, r := range env.To {
			smtptrace.Start(ctx, smtptrace.PhaseRcpt, i)
			smtptrace.Done(ctx, smtptrace.PhaseRcpt, smtptrace.PhaseInfo{Index: i, Code: 250})
			res.Rcpts = append(res.Rcpts, transport.RcptResult{Addr: r.Addr, Outcome: transport.Accepted, Reply: res.Reply, Attempts: 1})
		}
		smtptrace.Start(ctx, smtptrace.PhaseData, -1)
		n, _ := io.Copy(io.Discard, msg)
		smtptrace.Done(ctx, smtptrace.PhaseData, smtptrace.PhaseInfo{Index: -1, Code: 354, Bytes: n, Command: "DATA"})
		return res, nil
	})

	t := otelsmtp.New(
		otelsmtp.WithTracerProvider(tp),
		otelsmtp.WithAttributes(attribute.String("smtp.transport", "smtp")),
	)(server)

	env := &envelope.Envelope{From: "alice@example.org", To: []envelope.Recipient{{Addr: "bob@example.org"}, {Addr: "carol@example.org"}}}
	t.Send(context.Background(), env, strings.NewReader("Subject: hi\r\n\r\nhello\r\n"))

	s := rec.Ended()[0]
	fmt.Println(s.Name(), s.SpanKind())
	for _, kv := range s.Attributes() {
		fmt.Printf("  %s = %s\n", kv.Key, kv.Value.Emit())
	}
	for _, e := range s.Events() {
		fmt.Print("  event ", e.Name)
		for _, kv := range e.Attributes {
			if kv.Key != "smtp.phase.duration" {
				fmt.Printf(" %s=%s", kv.Key, kv.Value.Emit())
			}
		}
		fmt.Println()
	}
	// Output:
	// smtp.send client
	//   smtp.transport = smtp
	//   smtp.recipients.count = 2
	//   smtp.recipients.refused = 0
	//   smtp.reply.code = 250
	//   smtp.reply.enhanced_code = 2.0.0
	//   event smtp.mail smtp.reply.code=250
	//   event smtp.rcpt smtp.rcpt.index=0 smtp.reply.code=250
	//   event smtp.rcpt smtp.rcpt.index=1 smtp.reply.code=250
	//   event smtp.data smtp.reply.code=354 smtp.command=DATA smtp.data.bytes=22
}
