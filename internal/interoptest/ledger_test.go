package interoptest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadLedger(t *testing.T) {
	dir := t.TempDir()
	if got, err := ReadLedger(dir); err != nil || got != nil {
		t.Fatalf("empty ledger: %v, %v", got, err)
	}
	index := `{"n": 1, "file": "1.eml", "mail_from": "a@x", "rcpt_tos": ["Bob@Example.test", "c@x"], "message_id": "<m1@t>", "x_test_id": null, "size": 10, "sha256": "ab", "mail_options": ["BODY=8BITMIME"], "rcpt_options": [], "smtp_utf8": false, "tls": true, "auth": "bob", "peer": "127.0.0.1:1", "time": 1.5}
{"n": 2, "file": "2.eml", "mail_from": "", "rcpt_tos": ["bob@example.test"], "message_id": "<m1@t>", "x_test_id": "k2", "size": 10, "sha256": "cd", "mail_options": [], "rcpt_options": [], "smtp_utf8": false, "tls": false, "auth": null, "peer": "127.0.0.1:2", "time": 2}
{"n": 3, "file": "3.eml", "mail_from": "a@x", "rcpt_tos": ["d@x"], "message_id": "<m3@t>", "x_test_id": "k3"
`
	if err := os.WriteFile(filepath.Join(dir, "index.jsonl"), []byte(index[:len(index)-1]), 0o644); err != nil {
		t.Fatal(err)
	}
	entries, err := ReadLedger(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("got %d entries, want 2 (the unterminated last line is still being written)", len(entries))
	}
	e := entries[0]
	if e.N != 1 || e.MailFrom != "a@x" || !e.TLS || e.Auth != "bob" || e.MessageID != "<m1@t>" || e.XTestID != "" || e.MailOptions[0] != "BODY=8BITMIME" {
		t.Errorf("entry 1 = %+v", e)
	}
	if !e.HasRcpt("bob@example.TEST") || e.HasRcpt("nobody@x") {
		t.Error("HasRcpt is wrong")
	}
	if n := LedgerCount(entries, "m1@t", "bob@example.test"); n != 2 {
		t.Errorf("LedgerCount(m1, bob) = %d, want 2 (a duplicate)", n)
	}
	if n := LedgerCount(entries, "m1@t", "c@x"); n != 1 {
		t.Errorf("LedgerCount(m1, c) = %d, want 1", n)
	}
	if n := LedgerCount(entries, "k2", "c@x"); n != 0 {
		t.Errorf("LedgerCount(k2, c) = %d, want 0", n)
	}
	if got := FilterLedger(entries, "k2"); len(got) != 1 || got[0].N != 2 {
		t.Errorf("FilterLedger(k2) = %+v", got)
	}

	// A corrupt complete line is an error.
	if err := os.WriteFile(filepath.Join(dir, "index.jsonl"), []byte("{not json}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLedger(dir); err == nil {
		t.Error("corrupt index accepted")
	}
}
