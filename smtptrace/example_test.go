package smtptrace_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/smtptrace"
	"github.com/mailwire/mailwire/transport/smtptest"
)

func ExampleWithClientTrace() {
	srv := smtptest.NewServer()
	defer srv.Close()
	tr := srv.Transport()
	defer tr.Close()

	// Print each phase as it ends: no addresses, no content, only codes.
	ctx := smtptrace.WithClientTrace(context.Background(), &smtptrace.ClientTrace{
		PhaseDone: func(p smtptrace.Phase, info smtptrace.PhaseInfo) {
			switch p {
			case smtptrace.PhaseMail, smtptrace.PhaseRcpt, smtptrace.PhaseEndOfData:
				fmt.Println(p, info.Index, info.Code)
			}
		},
	})
	tr.DisableChunking = true
	tr.Send(ctx, envelope.New("a@example.org", "b@example.org", "c@example.org"), strings.NewReader("Subject: hi\r\n\r\nHi\r\n"))
	// Output:
	// mail -1 250
	// rcpt 0 250
	// rcpt 1 250
	// end-of-data -1 250
}
