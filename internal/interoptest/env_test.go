package interoptest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseEnv(t *testing.T) {
	got, err := ParseEnv([]byte("# comment\n\nA='x y'\nB=\"q\"\nexport C=plain\nD=''\nE='it=has=equals'\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "x y", "B": "q", "C": "plain", "D": "", "E": "it=has=equals"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for _, bad := range []string{"no equals sign", "=value", "A='unterminated", "A B=c"} {
		if _, err := ParseEnv([]byte(bad + "\n")); err == nil {
			t.Errorf("ParseEnv(%q) succeeded, want an error", bad)
		}
	}
}

func TestLoad(t *testing.T) {
	path := writeEnv(t)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	checks := map[string][2]string{
		"EnvFile":           {cfg.EnvFile, path},
		"Dir":               {cfg.Dir, dir},
		"PostfixSMTP":       {cfg.PostfixSMTP, "127.0.0.1:2525"},
		"PostfixSubmission": {cfg.PostfixSubmission, "127.0.0.1:2587"},
		"PostfixSMTPS":      {cfg.PostfixSMTPS, "127.0.0.1:2465"},
		"DovecotLMTPSocket": {cfg.DovecotLMTPSocket, dir + "/lmtp.sock"},
		"DovecotSubmission": {cfg.DovecotSubmission, ""},
		"SinkSMTP":          {cfg.SinkSMTP, "127.0.0.1:2527"},
		"Alice":             {cfg.Alice.Name + ":" + cfg.Alice.Password, "alice:alice-secret-PW1"},
		"Dave":              {cfg.Dave.Name + ":" + cfg.Dave.Password, "dave:dave-secret-PW4"},
		"UTF8Address":       {cfg.UTF8Address, "josé@interop.test"},
		"VirtualMaildir":    {cfg.VirtualMaildir("bob"), dir + "/mail/virtual/bob"},
		"DovecotMaildir":    {cfg.DovecotMaildir("lmtp.interop.test", "dave"), dir + "/mail/dovecot/lmtp.interop.test/dave"},
		"Alice.Address":     {cfg.Alice.Address(cfg.Domain), "alice@interop.test"},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", name, c[0], c[1])
		}
	}
	if cfg.PostfixSizeLimit != 10485760 {
		t.Errorf("PostfixSizeLimit = %d", cfg.PostfixSizeLimit)
	}
	if len(cfg.Users) != 4 {
		t.Errorf("Users = %v", cfg.Users)
	}
	if u, ok := cfg.User("carol"); !ok || u.Password != "carol-secret-PW3" {
		t.Errorf("User(carol) = %v, %v", u, ok)
	}
	if _, ok := cfg.User("mallory"); ok {
		t.Error("User(mallory) found")
	}
	if cfg.CertPool().Equal(cfg.UntrustedCertPool()) {
		t.Error("CertPool and UntrustedCertPool are equal")
	}
	tc := cfg.TLSConfig()
	if tc.ServerName != "localhost" || tc.RootCAs == nil || tc.MinVersion == 0 {
		t.Errorf("TLSConfig = %+v", tc)
	}
}

func TestLoadErrors(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}

	// A required key left empty by a later line.
	_, err = Load(writeEnv(t, "POSTFIX_SMTP=''"))
	if err == nil || !strings.Contains(err.Error(), "POSTFIX_SMTP") {
		t.Errorf("empty POSTFIX_SMTP: err = %v", err)
	}

	// A user without a password.
	_, err = Load(writeEnv(t, "USERS='alice eve'"))
	if err == nil || !strings.Contains(err.Error(), "EVE_PASSWORD") {
		t.Errorf("user without password: err = %v", err)
	}

	// A CA file that is gone is an unusable env file, not an absent one.
	_, err = Load(writeEnv(t, "CA_FILE='/nonexistent/ca.pem'"))
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing CA file: err = %v, want an error that is not ErrNotExist", err)
	}

	// A CA file that holds no certificate.
	junk := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err = Load(writeEnv(t, "UNTRUSTED_CA_FILE='"+junk+"'")); err == nil {
		t.Error("junk UNTRUSTED_CA_FILE accepted")
	}
}

func TestEnvModes(t *testing.T) {
	good := writeEnv(t)
	absent := filepath.Join(t.TempDir(), "absent-env")
	broken := writeEnv(t, "LEDGER_DIR=''")
	cases := []struct {
		name, mode, file string
		skip, fail       bool
	}{
		{"unset, no file: skip", "", absent, true, false},
		{"unset, file: config", "", good, false, false},
		{"unset, broken file: fail", "", broken, false, true},
		{"1, no file: fail", "1", absent, false, true},
		{"1, file: config", "1", good, false, false},
		{"1, broken file: fail", "1", broken, false, true},
		{"0, file: skip", "0", good, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(EnvVarMode, c.mode)
			t.Setenv(EnvVarFile, c.file)
			var cfg *Config
			f := runFake(t, func(tb testing.TB) { cfg = Env(tb) })
			if f.skipped != c.skip || f.failed != c.fail {
				t.Fatalf("skipped=%v failed=%v (%s), want skipped=%v failed=%v", f.skipped, f.failed, f.msg, c.skip, c.fail)
			}
			if !c.skip && !c.fail && (cfg == nil || cfg.PostfixSMTP == "") {
				t.Fatalf("Env returned %+v", cfg)
			}
			if c.skip && !strings.Contains(f.msg, EnvVarMode) {
				t.Errorf("skip message %q does not say how to enable the tests", f.msg)
			}
		})
	}
}

func TestEnvFileDefault(t *testing.T) {
	t.Setenv(EnvVarFile, "")
	if got := EnvFile(); got != DefaultEnvFile {
		t.Errorf("EnvFile() = %q, want %q", got, DefaultEnvFile)
	}
	t.Setenv(EnvVarFile, "/somewhere/env")
	if got := EnvFile(); got != "/somewhere/env" {
		t.Errorf("EnvFile() = %q", got)
	}
}

func TestRequire(t *testing.T) {
	cfg, err := Load(writeEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mode       string
		skip, fail bool
	}{{"", true, false}, {"1", false, true}} {
		t.Setenv(EnvVarMode, c.mode)
		f := runFake(t, func(tb testing.TB) { cfg.Require(tb, "SINK_SMTP", "DOVECOT_SUBMISSION") })
		if f.skipped != c.skip || f.failed != c.fail || !strings.Contains(f.msg, "DOVECOT_SUBMISSION") {
			t.Errorf("mode %q: skipped=%v failed=%v msg=%q", c.mode, f.skipped, f.failed, f.msg)
		}
		f = runFake(t, func(tb testing.TB) { cfg.Require(tb, "SINK_SMTP") })
		if f.skipped || f.failed {
			t.Errorf("mode %q: Require(SINK_SMTP) stopped the test: %s", c.mode, f.msg)
		}
	}
}
