package interoptest

import (
	"strings"
	"testing"
)

func TestToLF(t *testing.T) {
	if got := string(ToLF([]byte("a\r\nb\rc\n\r\n"))); got != "a\nb\rc\n\n" {
		t.Errorf("ToLF = %q", got)
	}
}

const original = "From: a@x\r\nSubject: hi\r\nMessage-ID: <m@x>\r\n\r\n.leading dot\r\nbody\r\n"

// postfixCopy is original as Postfix's virtual(8) stores it.
const postfixCopy = "Return-Path: <a@x>\n" +
	"X-Original-To: alice@interop.test\n" +
	"Delivered-To: alice@interop.test\n" +
	"Received: from vm (unknown [127.0.0.1])\n" +
	"\tby mx.interop.test (Postfix) with ESMTP id 1A2B3C\n" +
	"\tfor <alice@interop.test>; Sat, 29 Nov 2026 15:19:30 +0000 (UTC)\n" +
	"From: a@x\nSubject: hi\nMessage-ID: <m@x>\n\n.leading dot\nbody\n"

func TestStripAddedHeaders(t *testing.T) {
	got := string(StripAddedHeaders([]byte(postfixCopy), []byte(original)))
	if got != strings.ReplaceAll(original, "\r\n", "\n") {
		t.Errorf("StripAddedHeaders = %q", got)
	}
	// Without the original, every leading added field goes.
	if got := string(StripAddedHeaders([]byte(postfixCopy), nil)); !strings.HasPrefix(got, "From: a@x\n") {
		t.Errorf("StripAddedHeaders(nil) = %q", got)
	}
	// An original that itself begins with Received keeps it.
	orig := "Received: from earlier\r\n by relay\r\nFrom: a@x\r\n\r\nb\r\n"
	stored := "Return-Path: <a@x>\nReceived: from vm\n\tby mx\n" + strings.ReplaceAll(orig, "\r\n", "\n")
	if got := string(StripAddedHeaders([]byte(stored), []byte(orig))); got != strings.ReplaceAll(orig, "\r\n", "\n") {
		t.Errorf("original's own Received removed: %q", got)
	}
	// Other fields stop the stripping.
	if got := string(StripAddedHeaders([]byte("X-Other: 1\nReceived: x\n\nb"), nil)); got != "X-Other: 1\nReceived: x\n\nb" {
		t.Errorf("stripped past a field that is not added: %q", got)
	}
	// A field without a line end is left alone.
	if got := string(StripAddedHeaders([]byte("Received: x"), nil)); got != "Received: x" {
		t.Errorf("got %q", got)
	}
}

func TestCompareDelivered(t *testing.T) {
	if err := CompareDelivered([]byte(postfixCopy), []byte(original)); err != nil {
		t.Errorf("maildir copy: %v", err)
	}
	// The ledger stores CRLF, without added headers.
	if err := CompareDelivered([]byte(original), []byte(original)); err != nil {
		t.Errorf("ledger copy: %v", err)
	}
	changed := strings.Replace(postfixCopy, ".leading dot", "leading dot", 1)
	err := CompareDelivered([]byte(changed), []byte(original))
	if err == nil || !strings.Contains(err.Error(), "differs") || !strings.Contains(err.Error(), "leading dot") {
		t.Errorf("changed body: err = %v", err)
	}
	// A header the server added that is not in AddedHeaderNames is a difference.
	err = CompareDelivered([]byte("X-Spam: yes\n"+strings.ReplaceAll(original, "\r\n", "\n")), []byte(original))
	if err == nil {
		t.Error("unexpected added header accepted")
	}
}

func TestBodyAfterHeaders(t *testing.T) {
	cases := map[string]string{
		"A: 1\r\nB: 2\r\n\r\nbody\r\n": "body\r\n",
		"A: 1\nB: 2\n\nbody\n":         "body\n",
		"A: 1\r\n\r\n":                 "",
		"\r\nno headers":               "no headers",
		"A: 1\n\n\nbody":               "\nbody",
	}
	for in, want := range cases {
		got := BodyAfterHeaders([]byte(in))
		if got == nil || string(got) != want {
			t.Errorf("BodyAfterHeaders(%q) = %q, want %q", in, got, want)
		}
	}
	if got := BodyAfterHeaders([]byte("A: 1\r\nB: 2\r\n")); got != nil {
		t.Errorf("no empty line: got %q, want nil", got)
	}
}
