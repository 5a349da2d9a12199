package interoptest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// LedgerEntry is one message accepted by the aiosmtpd ledger: one line of
// its index.jsonl. The ledger writes the line only after the message's file
// is complete, and before it answers 250 to the final dot.
type LedgerEntry struct {
	// N numbers the accepted messages from 1.
	N int `json:"n"`
	// File is the message's file name in the ledger directory ("<n>.eml").
	File string `json:"file"`
	// MailFrom is the reverse-path ("" for the null sender).
	MailFrom string `json:"mail_from"`
	// RcptTos lists the recipients that were accepted, in RCPT order.
	RcptTos []string `json:"rcpt_tos"`
	// MessageID is the message's Message-ID header, brackets included, or "".
	MessageID string `json:"message_id"`
	// XTestID is the message's X-Test-ID header, or "".
	XTestID string `json:"x_test_id"`
	// Size is the message's size in bytes, after dot-unstuffing.
	Size int64 `json:"size"`
	// SHA256 is the hex SHA-256 of the message bytes.
	SHA256 string `json:"sha256"`
	// MailOptions are the MAIL parameters, upper-cased by aiosmtpd.
	MailOptions []string `json:"mail_options"`
	// RcptOptions are the RCPT parameters of the accepted recipients.
	RcptOptions []string `json:"rcpt_options"`
	// SMTPUTF8 reports whether MAIL carried the SMTPUTF8 parameter.
	SMTPUTF8 bool `json:"smtp_utf8"`
	// TLS reports whether the session had switched to TLS.
	TLS bool `json:"tls"`
	// Auth is the authenticated user, or "".
	Auth string `json:"auth"`
	// Peer is the client's address.
	Peer string `json:"peer"`
	// Time is when the message was accepted, in seconds since the Unix epoch.
	Time float64 `json:"time"`
}

// HasRcpt reports whether the entry's accepted recipients include addr,
// compared without regard to case.
func (e LedgerEntry) HasRcpt(addr string) bool {
	for _, r := range e.RcptTos {
		if strings.EqualFold(r, addr) {
			return true
		}
	}
	return false
}

// ReadLedger returns the ledger's entries in dir (index.jsonl), ignoring a
// last line that is still being written. A missing index means no message
// was accepted yet.
func ReadLedger(dir string) ([]LedgerEntry, error) {
	b, err := os.ReadFile(filepath.Join(dir, "index.jsonl"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	var out []LedgerEntry
	for n, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e LedgerEntry
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("index.jsonl line %d: %w", n+1, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// LedgerEntries returns every message the ledger of cfg has accepted so far,
// failing the test if the index cannot be read. Other tests share the
// ledger: filter by your own marker ([LedgerCount], [FilterLedger]).
func LedgerEntries(t testing.TB, cfg *Config) []LedgerEntry {
	t.Helper()
	entries, err := ReadLedger(cfg.LedgerDir)
	if err != nil {
		t.Fatalf("interoptest.LedgerEntries: %v", err)
	}
	return entries
}

// FilterLedger returns the entries whose Message-ID or X-Test-ID contains
// marker.
func FilterLedger(entries []LedgerEntry, marker string) []LedgerEntry {
	var out []LedgerEntry
	for _, e := range entries {
		if strings.Contains(e.MessageID, marker) || strings.Contains(e.XTestID, marker) {
			out = append(out, e)
		}
	}
	return out
}

// LedgerCount returns how many copies of the message whose Message-ID or
// X-Test-ID contains marker were accepted for rcpt: 1 is delivered once, 0
// lost (or refused), more than 1 duplicated.
func LedgerCount(entries []LedgerEntry, marker, rcpt string) int {
	n := 0
	for _, e := range FilterLedger(entries, marker) {
		for _, r := range e.RcptTos {
			if strings.EqualFold(r, rcpt) {
				n++
			}
		}
	}
	return n
}

// WaitLedger waits up to timeout for the ledger to hold at least one
// message whose Message-ID or X-Test-ID contains marker, and returns all
// such entries. It fails the test on timeout.
func WaitLedger(t testing.TB, cfg *Config, marker string, timeout time.Duration) []LedgerEntry {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if got := FilterLedger(LedgerEntries(t, cfg), marker); len(got) > 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("interoptest.WaitLedger: no message with marker %q in %s after %v", marker, cfg.LedgerDir, timeout)
		}
		time.Sleep(pollInterval)
	}
}

// LedgerMessage returns the bytes the ledger stored for e: the DATA exactly
// as received (CRLF line endings) after dot-unstuffing.
func LedgerMessage(t testing.TB, cfg *Config, e LedgerEntry) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cfg.LedgerDir, filepath.Base(e.File)))
	if err != nil {
		t.Fatalf("interoptest.LedgerMessage: %v", err)
	}
	return b
}
