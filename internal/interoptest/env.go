package interoptest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Environment variables read by [Env].
const (
	// EnvVarFile names the env file written by start.sh. When unset,
	// [DefaultEnvFile] is used.
	EnvVarFile = "MAILWIRE_INTEROP_ENV"

	// EnvVarMode selects what happens without servers. Unset: interop tests
	// skip when the env file is missing. "1" (set by .ci/run): they fail.
	// "0": they always skip, even when servers run.
	EnvVarMode = "MAILWIRE_INTEROP"

	// DefaultEnvFile is where start.sh writes the env file by default.
	DefaultEnvFile = "/tmp/mailwire-interop/env"
)

// User is one of the test accounts known to Dovecot's passwd-file (and so
// to Postfix's SASL and to Dovecot's submission service).
type User struct {
	// Name is the login name, for example "alice".
	Name string
	// Password is the account's password, in clear.
	Password string
}

// Address returns the user's address in domain, for example
// "alice@interop.test".
func (u User) Address(domain string) string { return u.Name + "@" + domain }

// Config describes a running set of interop servers, as read from the env
// file that scripts/interop/start.sh writes. Addresses are "host:port"
// strings for net.Dial. An optional server that was not started has an empty
// address: check it with [Config.Require].
type Config struct {
	// EnvFile is the file this Config was read from.
	EnvFile string
	// Dir is the directory holding everything start.sh made (MAILWIRE_INTEROP_DIR).
	Dir string

	// PostfixSMTP is plain SMTP with STARTTLS offered, no AUTH (port 2525).
	PostfixSMTP string
	// PostfixSubmission requires STARTTLS, then AUTH (port 2587).
	PostfixSubmission string
	// PostfixSMTPS is implicit TLS with AUTH (port 2465).
	PostfixSMTPS string
	// PostfixUntrustedCertSMTP offers STARTTLS with a certificate signed by
	// the untrusted CA (port 2591).
	PostfixUntrustedCertSMTP string
	// PostfixExpiredCertSMTP offers STARTTLS with an expired certificate
	// signed by the trusted CA (port 2592).
	PostfixExpiredCertSMTP string
	// PostfixWrongHostCertSMTP offers STARTTLS with a certificate signed by
	// the trusted CA for another host name (port 2593).
	PostfixWrongHostCertSMTP string
	// PostfixOldTLSSMTP offers STARTTLS with TLS 1.0 and 1.1 only (port 2594).
	PostfixOldTLSSMTP string
	// PostfixHostname is Postfix's myhostname (mx.interop.test).
	PostfixHostname string
	// PostfixSizeLimit is Postfix's message_size_limit, advertised as SIZE.
	PostfixSizeLimit int64
	// PostfixConfigDir holds main.cf and master.cf (postfix -c).
	PostfixConfigDir string
	// PostfixLog is Postfix's maillog_file.
	PostfixLog string
	// PostfixQueueDir is the instance's queue_directory.
	PostfixQueueDir string
	// PostfixPIDFile is the master's pid file.
	PostfixPIDFile string

	// DovecotLMTPSocket is Dovecot's LMTP Unix socket.
	DovecotLMTPSocket string
	// DovecotLMTPTCP is Dovecot's LMTP TCP listener (port 2424).
	DovecotLMTPTCP string
	// DovecotSubmission is Dovecot's submission service (STARTTLS, AUTH
	// including SCRAM-SHA-1 and SCRAM-SHA-256; relays to PostfixSMTP), or
	// empty when dovecot-submissiond is not installed (port 2588).
	DovecotSubmission string
	// DovecotAuthSocket is the auth socket Postfix uses for SASL.
	DovecotAuthSocket string
	// DovecotConfig is the instance's dovecot.conf.
	DovecotConfig string
	// DovecotLog is Dovecot's log file.
	DovecotLog string
	// DovecotPIDFile is the Dovecot master's pid file.
	DovecotPIDFile string

	// LedgerSMTP is the aiosmtpd delivery ledger (port 2526).
	LedgerSMTP string
	// LedgerDir holds the ledger's <n>.eml files and index.jsonl.
	LedgerDir string
	// LedgerPIDFile is the ledger's pid file.
	LedgerPIDFile string

	// SinkSMTP is Postfix's smtp-sink, or empty when it was not started
	// (port 2527).
	SinkSMTP string
	// SinkPIDFile is smtp-sink's pid file.
	SinkPIDFile string

	// TLSServerName is a name every good certificate is valid for
	// ("localhost"); the certificates also hold 127.0.0.1 and mx.interop.test.
	TLSServerName string
	// CAFile is the PEM certificate of the CA that signed the servers'
	// certificates (and the expired and wrong-host ones).
	CAFile string
	// ServerCertFile and ServerKeyFile are the good server certificate and key.
	ServerCertFile, ServerKeyFile string
	// ClientCertFile and ClientKeyFile are a client certificate (CN alice)
	// signed by the CA, for TLS client authentication tests.
	ClientCertFile, ClientKeyFile string
	// UntrustedCAFile is a second CA that nothing trusts.
	UntrustedCAFile string
	// UntrustedCertFile and UntrustedKeyFile are a certificate for the right
	// names signed by the untrusted CA, for a fault proxy to present.
	UntrustedCertFile, UntrustedKeyFile string
	// ExpiredCertFile and ExpiredKeyFile are an expired certificate for the
	// right names, signed by the trusted CA.
	ExpiredCertFile, ExpiredKeyFile string
	// WrongHostCertFile and WrongHostKeyFile are a certificate for
	// wrong-host.interop.invalid only, signed by the trusted CA.
	WrongHostCertFile, WrongHostKeyFile string

	// Domain is delivered by Postfix's virtual(8) to maildirs (interop.test).
	Domain string
	// LMTPDomain is delivered by Postfix to Dovecot over LMTP, and is the
	// domain to use when talking LMTP to Dovecot directly (lmtp.interop.test).
	LMTPDomain string
	// VirtualMaildirRoot holds Postfix's maildirs, one per user.
	VirtualMaildirRoot string
	// DovecotMaildirRoot holds Dovecot's maildirs, as <domain>/<user>.
	DovecotMaildirRoot string

	// Users lists the accounts, in the env file's order.
	Users []User
	// Alice, Bob, Carol and Dave are the four accounts. Dave has the tiny
	// LMTP quota.
	Alice, Bob, Carol, Dave User
	// QuotaUser is the user whose Dovecot quota is about 1 KiB ("dave").
	QuotaUser string
	// UTF8User is the Postfix maildir user that receives UTF8Address.
	UTF8User string
	// UTF8Address is a recipient with a non-ASCII local part (SMTPUTF8).
	UTF8Address string
	// RejectRcpt is refused by Postfix with 550 5.7.1 at RCPT.
	RejectRcpt string
	// TempfailRcpt is refused by Postfix with 450 4.2.0 at RCPT.
	TempfailRcpt string
	// BadSender is refused by Postfix with 553 5.7.1 at MAIL.
	BadSender string
	// UnknownRcpt is an unknown user in Domain (550 5.1.1 at RCPT).
	UnknownRcpt string

	// Raw holds every key of the env file, including any not mapped above.
	Raw map[string]string

	caPEM, untrustedCAPEM []byte
}

// EnvFile returns the env file that [Env] reads: $MAILWIRE_INTEROP_ENV, or
// [DefaultEnvFile].
func EnvFile() string {
	if p := os.Getenv(EnvVarFile); p != "" {
		return p
	}
	return DefaultEnvFile
}

// mode reports what $MAILWIRE_INTEROP asks for.
type mode int

const (
	modeOptional mode = iota // unset: skip without servers
	modeRequired             // 1: fail without servers
	modeDisabled             // 0: always skip
)

func currentMode() mode {
	switch strings.ToLower(strings.TrimSpace(os.Getenv(EnvVarMode))) {
	case "":
		return modeOptional
	case "0", "false", "no", "off":
		return modeDisabled
	default:
		return modeRequired
	}
}

// Required reports whether interop tests must fail, rather than skip, when
// the servers are missing ($MAILWIRE_INTEROP set to 1, as in CI).
func Required() bool { return currentMode() == modeRequired }

// Env returns the running interop servers' [Config], read from [EnvFile].
//
// Without servers it skips the test: when $MAILWIRE_INTEROP is unset and the
// env file does not exist, or when $MAILWIRE_INTEROP is 0. When
// $MAILWIRE_INTEROP is 1 (as .ci/run sets it) a missing file fails the test.
// An env file that exists but is incomplete or names missing files always
// fails the test. Env calls t.Skip and t.Fatal, so it must be called from the
// test's goroutine.
func Env(t testing.TB) *Config {
	t.Helper()
	path := EnvFile()
	m := currentMode()
	if m == modeDisabled {
		t.Skipf("interop tests disabled: %s=0", EnvVarMode)
		return nil
	}
	cfg, err := Load(path)
	switch {
	case err == nil:
		return cfg
	case errors.Is(err, fs.ErrNotExist) && m == modeOptional:
		t.Skipf("interop servers not running (no %s): start them with scripts/interop/start.sh, "+
			"or set %s=1 to make this a failure", path, EnvVarMode)
	case errors.Is(err, fs.ErrNotExist):
		t.Fatalf("interop servers required (%s=1) but not running: %v; "+
			"scripts/interop/start.sh writes %s", EnvVarMode, err, path)
	default:
		t.Fatalf("interop environment %s is unusable: %v", path, err)
	}
	return nil
}

// Require skips (or, when [Required], fails) the test unless every named
// env-file key has a non-empty value; use it for optional servers:
//
//	cfg.Require(t, "SINK_SMTP")
func (c *Config) Require(t testing.TB, keys ...string) {
	t.Helper()
	var missing []string
	for _, k := range keys {
		if c.Raw[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return
	}
	if Required() {
		t.Fatalf("interop environment %s lacks %s", c.EnvFile, strings.Join(missing, ", "))
	}
	t.Skipf("interop environment %s lacks %s", c.EnvFile, strings.Join(missing, ", "))
}

// requiredKeys must be present and non-empty in every env file.
var requiredKeys = []string{
	"MAILWIRE_INTEROP_DIR",
	"POSTFIX_SMTP", "POSTFIX_SUBMISSION", "POSTFIX_SMTPS",
	"DOVECOT_LMTP_SOCKET", "DOVECOT_LMTP_TCP",
	"LEDGER_SMTP", "LEDGER_DIR",
	"CA_FILE", "UNTRUSTED_CA_FILE", "TLS_SERVER_NAME",
	"DOMAIN", "LMTP_DOMAIN", "VIRTUAL_MAILDIR_ROOT", "DOVECOT_MAILDIR_ROOT",
	"USERS",
}

// Load reads and checks an env file without a testing.TB. The error wraps
// fs.ErrNotExist when the file does not exist.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	raw, err := ParseEnv(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c, err := fromRaw(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.EnvFile = path
	if c.caPEM, err = readPEMCerts(c.CAFile); err != nil {
		return nil, fmt.Errorf("%s: CA_FILE: %w", path, err)
	}
	if c.untrustedCAPEM, err = readPEMCerts(c.UntrustedCAFile); err != nil {
		return nil, fmt.Errorf("%s: UNTRUSTED_CA_FILE: %w", path, err)
	}
	if _, err := os.Stat(c.Dir); err != nil {
		return nil, fmt.Errorf("%s: MAILWIRE_INTEROP_DIR: %w", path, err)
	}
	return c, nil
}

// readPEMCerts reads a PEM file and checks that it holds a certificate. Its
// errors never wrap fs.ErrNotExist: a named file that is missing makes the
// env file unusable, not absent.
func readPEMCerts(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", path, err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return b, nil
}

// ParseEnv parses the env file format start.sh writes: KEY=value lines,
// where value may be wrapped in single or double quotes (taken literally,
// without escapes), an optional "export " prefix, blank lines and #
// comments.
func ParseEnv(data []byte) (map[string]string, error) {
	out := make(map[string]string)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t'\"") {
			return nil, fmt.Errorf("line %d: not KEY=value: %q", n, line)
		}
		if len(v) >= 2 && (v[0] == '\'' || v[0] == '"') {
			if v[len(v)-1] != v[0] {
				return nil, fmt.Errorf("line %d: unterminated quote in %s", n, k)
			}
			v = v[1 : len(v)-1]
		}
		out[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func fromRaw(raw map[string]string) (*Config, error) {
	var missing []string
	for _, k := range requiredKeys {
		if raw[k] == "" {
			missing = append(missing, k)
		}
	}
	users := strings.Fields(raw["USERS"])
	for _, u := range users {
		if raw[strings.ToUpper(u)+"_PASSWORD"] == "" {
			missing = append(missing, strings.ToUpper(u)+"_PASSWORD")
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("missing keys: %s", strings.Join(missing, ", "))
	}
	c := &Config{
		Dir:                      raw["MAILWIRE_INTEROP_DIR"],
		PostfixSMTP:              raw["POSTFIX_SMTP"],
		PostfixSubmission:        raw["POSTFIX_SUBMISSION"],
		PostfixSMTPS:             raw["POSTFIX_SMTPS"],
		PostfixUntrustedCertSMTP: raw["POSTFIX_UNTRUSTED_CERT_SMTP"],
		PostfixExpiredCertSMTP:   raw["POSTFIX_EXPIRED_CERT_SMTP"],
		PostfixWrongHostCertSMTP: raw["POSTFIX_WRONG_HOST_CERT_SMTP"],
		PostfixOldTLSSMTP:        raw["POSTFIX_OLD_TLS_SMTP"],
		PostfixHostname:          raw["POSTFIX_HOSTNAME"],
		PostfixConfigDir:         raw["POSTFIX_CONFIG_DIR"],
		PostfixLog:               raw["POSTFIX_LOG"],
		PostfixQueueDir:          raw["POSTFIX_QUEUE_DIR"],
		PostfixPIDFile:           raw["POSTFIX_PID_FILE"],
		DovecotLMTPSocket:        raw["DOVECOT_LMTP_SOCKET"],
		DovecotLMTPTCP:           raw["DOVECOT_LMTP_TCP"],
		DovecotSubmission:        raw["DOVECOT_SUBMISSION"],
		DovecotAuthSocket:        raw["DOVECOT_AUTH_SOCKET"],
		DovecotConfig:            raw["DOVECOT_CONFIG"],
		DovecotLog:               raw["DOVECOT_LOG"],
		DovecotPIDFile:           raw["DOVECOT_PID_FILE"],
		LedgerSMTP:               raw["LEDGER_SMTP"],
		LedgerDir:                raw["LEDGER_DIR"],
		LedgerPIDFile:            raw["LEDGER_PID_FILE"],
		SinkSMTP:                 raw["SINK_SMTP"],
		SinkPIDFile:              raw["SINK_PID_FILE"],
		TLSServerName:            raw["TLS_SERVER_NAME"],
		CAFile:                   raw["CA_FILE"],
		ServerCertFile:           raw["SERVER_CERT_FILE"],
		ServerKeyFile:            raw["SERVER_KEY_FILE"],
		ClientCertFile:           raw["CLIENT_CERT_FILE"],
		ClientKeyFile:            raw["CLIENT_KEY_FILE"],
		UntrustedCAFile:          raw["UNTRUSTED_CA_FILE"],
		UntrustedCertFile:        raw["UNTRUSTED_CERT_FILE"],
		UntrustedKeyFile:         raw["UNTRUSTED_KEY_FILE"],
		ExpiredCertFile:          raw["EXPIRED_CERT_FILE"],
		ExpiredKeyFile:           raw["EXPIRED_KEY_FILE"],
		WrongHostCertFile:        raw["WRONG_HOST_CERT_FILE"],
		WrongHostKeyFile:         raw["WRONG_HOST_KEY_FILE"],
		Domain:                   raw["DOMAIN"],
		LMTPDomain:               raw["LMTP_DOMAIN"],
		VirtualMaildirRoot:       raw["VIRTUAL_MAILDIR_ROOT"],
		DovecotMaildirRoot:       raw["DOVECOT_MAILDIR_ROOT"],
		QuotaUser:                raw["QUOTA_USER"],
		UTF8User:                 raw["UTF8_USER"],
		UTF8Address:              raw["UTF8_ADDRESS"],
		RejectRcpt:               raw["REJECT_RCPT"],
		TempfailRcpt:             raw["TEMPFAIL_RCPT"],
		BadSender:                raw["BAD_SENDER"],
		UnknownRcpt:              raw["UNKNOWN_RCPT"],
		Raw:                      raw,
	}
	if s := raw["POSTFIX_SIZE_LIMIT"]; s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("POSTFIX_SIZE_LIMIT: %w", err)
		}
		c.PostfixSizeLimit = n
	}
	for _, name := range users {
		u := User{Name: name, Password: raw[strings.ToUpper(name)+"_PASSWORD"]}
		c.Users = append(c.Users, u)
		switch name {
		case "alice":
			c.Alice = u
		case "bob":
			c.Bob = u
		case "carol":
			c.Carol = u
		case "dave":
			c.Dave = u
		}
	}
	return c, nil
}

// User returns the account called name, and whether it exists.
func (c *Config) User(name string) (User, bool) {
	for _, u := range c.Users {
		if u.Name == name {
			return u, true
		}
	}
	return User{}, false
}

// CertPool returns a new pool holding the CA that signed the servers'
// certificates, for tls.Config.RootCAs.
func (c *Config) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(c.caPEM)
	return p
}

// UntrustedCertPool returns a new pool holding only the untrusted CA.
func (c *Config) UntrustedCertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(c.untrustedCAPEM)
	return p
}

// TLSConfig returns a new client tls.Config that trusts [Config.CertPool],
// expects [Config.TLSServerName] and requires TLS 1.2 or later.
func (c *Config) TLSConfig() *tls.Config {
	return &tls.Config{
		RootCAs:    c.CertPool(),
		ServerName: c.TLSServerName,
		MinVersion: tls.VersionTLS12,
	}
}

// ClientCertificate loads the client certificate signed by the test CA.
func (c *Config) ClientCertificate() (tls.Certificate, error) {
	return tls.LoadX509KeyPair(c.ClientCertFile, c.ClientKeyFile)
}

// VirtualMaildir returns the maildir into which Postfix's virtual(8)
// delivers user@Domain, for example <root>/alice.
func (c *Config) VirtualMaildir(user string) string {
	return c.VirtualMaildirRoot + "/" + user
}

// DovecotMaildir returns the maildir into which Dovecot delivers
// user@domain, <root>/<domain>/<user>. Use [Config.LMTPDomain] for mail
// that went through Postfix, and the domain of the RCPT address for LMTP
// sent to Dovecot directly.
func (c *Config) DovecotMaildir(domain, user string) string {
	return c.DovecotMaildirRoot + "/" + domain + "/" + user
}
