package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/transport"
)

// Environment variables the command reads.
const (
	envConfig  = "MAILWIRE_CONFIG"  // configuration file, as --config
	envProfile = "MAILWIRE_PROFILE" // profile in it, as --profile
	envURL     = "MAILWIRE_URL"     // server URL when none is given
)

// exitError carries the exit status a failure maps to.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// failf returns an error that makes the command exit with code.
func failf(code int, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

// statusOf returns the exit status for an error returned by the command's
// own set-up code (not by a transport).
func statusOf(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitSoftware
}

// parseInterspersed parses flags that may appear before, between and after
// positional arguments, as most command-line tools allow, and returns the
// positional arguments. "--" ends the flags; "-" is an argument (stdin).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// printFlags lists the flags of fs as "--name ARG", which is how the
// documentation writes them (the flag package accepts one dash or two).
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		if arg == "value" {
			arg = "ADDR"
		}
		head := "  --" + f.Name
		if arg != "" {
			head += " " + arg
		}
		switch f.DefValue {
		case "", "false", "0", "[]":
		default:
			usage += " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(w, "%s\n        %s\n", head, usage)
	})
}

// parseCommand parses the flags of a command. --help prints the command's
// usage (its text, then its flags) on stdout; a bad flag gets the flag
// package's one-line error and a hint on stderr. ok is false when the
// command must exit with code.
func parseCommand(fs *flag.FlagSet, args []string, text string, stdout, stderr io.Writer) (pos []string, code int, ok bool) {
	fs.SetOutput(stderr)
	fs.Usage = func() {} // the error alone; the full usage only for --help
	pos, err := parseInterspersed(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintln(stdout, text)
		printFlags(stdout, fs)
		return nil, exitOK, false
	case err != nil:
		fmt.Fprintf(stderr, "see: %s help %s\n", prog, fs.Name())
		return nil, exitUsage, false
	}
	return pos, exitOK, true
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// connOptions are the connection flags that send, probe and the sendmail
// mode share.
type connOptions struct {
	configFile   string
	profile      string
	user         string
	authzid      string
	mech         string
	passwordFile string
	passwordEnv  string
	insecureAuth bool
	caFile       string
	certFile     string
	keyFile      string
	helo         string
	timeout      time.Duration
	debug        bool
	insecure     bool
	requireAll   bool
	// noPrompt forbids asking for the password on the terminal.
	noPrompt bool
	// secretRead and secretVal keep the secret once read: a failover
	// from a configuration applies the flags to each of its members.
	secretRead   bool
	secretVal    string
	warnedInsAut bool

	stderr io.Writer
	// set records the flags given on the command line.
	set map[string]bool
}

// register adds the connection flags to fs. withSend adds the flags that
// only make sense when sending.
func (o *connOptions) register(fs *flag.FlagSet, withSend bool) {
	fs.StringVar(&o.configFile, "config", "", "read the server and its settings from a mailwire configuration `FILE` (default $"+envConfig+")")
	fs.StringVar(&o.profile, "profile", "", "`NAME` of the profile in the configuration file (default $"+envProfile+", else the file's default)")
	fs.StringVar(&o.user, "user", "", "authenticate as `USER` (SASL authentication identity)")
	fs.StringVar(&o.authzid, "authzid", "", "SASL authorization `IDENTITY` to act as, when it differs from --user")
	fs.StringVar(&o.mech, "auth", "", "use the SASL mechanism `MECH` (default: negotiate the strongest both sides allow)")
	fs.StringVar(&o.passwordFile, "password-file", "", "read the password (or OAuth token) from the first line of `FILE`")
	fs.StringVar(&o.passwordEnv, "password-env", "", "read the password (or OAuth token) from the environment variable `VAR`")
	fs.BoolVar(&o.insecureAuth, "allow-insecure-auth", false, "allow credentials over an unencrypted TCP connection (dangerous)")
	fs.StringVar(&o.caFile, "ca", "", "trust the CA certificates in PEM `FILE` instead of the system roots")
	fs.StringVar(&o.certFile, "cert", "", "present the TLS client certificate in PEM `FILE`")
	fs.StringVar(&o.keyFile, "key", "", "private key of --cert, in PEM `FILE` (default: the --cert file)")
	fs.StringVar(&o.helo, "helo", "", "`NAME` to send with EHLO/LHLO (default: this host's FQDN or address literal)")
	fs.BoolVar(&o.debug, "debug", false, "print the protocol transcript to stderr (credentials redacted)")
	fs.BoolVar(&o.insecure, "insecure-skip-verify", false, "do not verify the server's certificate (dangerous)")
	if withSend {
		fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "bound each message to `DURATION`, connection set-up included")
		fs.BoolVar(&o.requireAll, "require-all", false, "all-or-nothing: send nothing if any recipient is refused (SMTP only)")
	} else {
		fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "bound the whole probe to `DURATION`")
	}
}

// noteSet records which flags the command line gave.
func (o *connOptions) noteSet(fs *flag.FlagSet) {
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
}

// target is the transport a command talks to.
type target struct {
	tr    transport.Transport
	smtp  *transport.SMTP // the SMTP transport of tr, if it has one
	lmtp  *transport.LMTP // the LMTP transport of tr, if it has one
	label string          // shown in messages: the URL or config:profile
	addr  string          // as dialed; "" when unknown
	roots *x509.CertPool  // trusted roots; nil for the system roots
	// serverName is the TLS server name, "" when unknown.
	serverName string
	// wrapped is true when smtp or lmtp is wrapped in middleware.
	wrapped bool
}

// isURL reports whether s looks like a server URL rather than a file name.
func isURL(s string) bool {
	i := strings.Index(s, "://")
	return i > 0 && !strings.ContainsAny(s[:i], "/\\.")
}

// resolveTarget builds the transport from a URL, from --config, or from the
// environment ($MAILWIRE_CONFIG, then $MAILWIRE_URL), and applies the
// connection flags to it.
func (o *connOptions) resolveTarget(rawURL string) (*target, error) {
	cfgFile, profile := o.configFile, o.profile
	if profile == "" {
		profile = os.Getenv(envProfile)
	}
	switch {
	case rawURL != "" && cfgFile != "":
		return nil, failf(exitUsage, "give a server URL or --config, not both")
	case rawURL != "":
		if o.profile != "" {
			return nil, failf(exitUsage, "--profile needs --config")
		}
		return o.fromURL(rawURL)
	case cfgFile != "":
		return o.fromConfig(cfgFile, profile)
	case os.Getenv(envConfig) != "":
		return o.fromConfig(os.Getenv(envConfig), profile)
	case os.Getenv(envURL) != "":
		if o.profile != "" {
			return nil, failf(exitUsage, "--profile needs --config")
		}
		return o.fromURL(os.Getenv(envURL))
	}
	return nil, failf(exitUsage, "no server: give a URL, --config FILE, or set $%s or $%s", envConfig, envURL)
}

// fromURL builds a transport for rawURL.
func (o *connOptions) fromURL(rawURL string) (*target, error) {
	tr, err := transport.FromURL(rawURL)
	if err != nil {
		return nil, failf(exitUsage, "%v", err)
	}
	if err := o.adjust(tr, false); err != nil {
		return nil, err
	}
	if o.insecure {
		o.warnInsecure()
	}
	return newTarget(tr, redactURL(rawURL)), nil
}

// redactURL drops anything but the scheme, host, path and query.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.User = nil
	u.Fragment = ""
	return u.String()
}

// newTarget describes tr for the commands. A transport wrapped in
// middleware keeps tr, but its SMTP or LMTP transport is found for probe.
func newTarget(tr transport.Transport, label string) *target {
	t := &target{tr: tr, label: label}
	inner := tr
	for {
		u, ok := inner.(interface{ Unwrap() transport.Transport })
		if !ok {
			break
		}
		inner = u.Unwrap()
	}
	var network, addr string
	var tlsConfig *tls.Config
	switch x := inner.(type) {
	case *transport.SMTP:
		t.smtp, network, addr, tlsConfig = x, x.Network, x.Addr, x.TLSConfig
	case *transport.LMTP:
		t.lmtp, network, addr, tlsConfig = x, x.Network, x.Addr, x.TLSConfig
		if network == "" && (strings.HasPrefix(addr, "/") || strings.HasPrefix(addr, "@")) {
			network = "unix"
		}
	default:
		return t
	}
	t.wrapped = inner != tr
	t.addr = addr
	if network != "unix" {
		t.serverName = hostOf(addr)
	}
	if tlsConfig != nil {
		t.roots = tlsConfig.RootCAs
		if tlsConfig.ServerName != "" {
			t.serverName = tlsConfig.ServerName
		}
	}
	return t
}

// hostOf returns the host of a "host:port" address.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// adjust applies the connection flags to an SMTP or LMTP transport. For a
// transport from a configuration file (onlySet), only the flags given on
// the command line change it, and TLS flags are merged into its TLS
// configuration.
func (o *connOptions) adjust(tr transport.Transport, onlySet bool) error {
	given := func(name string) bool { return !onlySet || o.set[name] }
	var (
		network, addr string
		sec           transport.Security
		tlsp          **tls.Config
		authp         *auth.Authenticator
		helop         *string
		debugp        *io.Writer
	)
	switch t := tr.(type) {
	case *transport.SMTP:
		network, addr, sec = t.Network, t.Addr, t.Security
		tlsp, authp, helop, debugp = &t.TLSConfig, &t.Auth, &t.LocalName, &t.Debug
		if o.requireAll {
			t.RequireAllRecipients = true
		}
	case *transport.LMTP:
		if o.requireAll {
			return failf(exitUsage, "--require-all is not available over LMTP: each recipient gets its own reply after the data")
		}
		network, addr, sec = t.Network, t.Addr, transport.Plaintext
		if t.RequireTLS {
			sec = transport.StartTLS
		}
		if network == "" && (strings.HasPrefix(addr, "/") || strings.HasPrefix(addr, "@")) {
			network = "unix"
		}
		tlsp, authp, helop, debugp = &t.TLSConfig, &t.Auth, &t.LocalName, &t.Debug
	default:
		return nil
	}
	host := addr
	if network != "unix" {
		host = hostOf(addr)
	}
	cfg, err := o.tlsConfig(*tlsp)
	if err != nil {
		return err
	}
	if cfg != nil {
		*tlsp = cfg
		if sec == transport.Plaintext && (o.caFile != "" || o.certFile != "") {
			fmt.Fprintf(o.stderr, "%s: warning: %s does not use TLS; --ca and --cert have no effect\n", prog, addr)
		}
	}
	if given("user") || given("auth") {
		a, err := o.authenticator(host)
		if err != nil {
			return err
		}
		if a != nil {
			*authp = a
		}
	}
	if o.helo != "" {
		*helop = o.helo
	}
	if o.debug {
		*debugp = o.stderr
	}
	return nil
}

// tlsConfig merges the TLS flags into base (which may be nil) and returns
// the result, or nil when the flags ask for nothing.
func (o *connOptions) tlsConfig(base *tls.Config) (*tls.Config, error) {
	if o.caFile == "" && o.certFile == "" && o.keyFile == "" && !o.insecure {
		return nil, nil
	}
	cfg := base.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, failf(exitConfig, "--ca: %v", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, failf(exitConfig, "--ca: no PEM certificate in %s", o.caFile)
		}
		cfg.RootCAs = roots
	}
	if o.keyFile != "" && o.certFile == "" {
		return nil, failf(exitUsage, "--key needs --cert")
	}
	if o.certFile != "" {
		key := o.keyFile
		if key == "" {
			key = o.certFile
		}
		cert, err := tls.LoadX509KeyPair(o.certFile, key)
		if err != nil {
			return nil, failf(exitConfig, "--cert/--key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if o.insecure {
		cfg.InsecureSkipVerify = true
	}
	return cfg, nil
}

func (o *connOptions) warnInsecure() {
	fmt.Fprintf(o.stderr, "%s: WARNING: --insecure-skip-verify: the server's certificate is NOT verified.\n"+
		"%s: WARNING: anyone on the network path can read and alter this session, credentials included.\n", prog, prog)
}

// oauthMechanisms take a bearer token rather than a password.
var oauthMechanisms = map[string]bool{"XOAUTH2": true, "OAUTHBEARER": true}

// noSecretMechanisms need neither a password nor a token.
var noSecretMechanisms = map[string]bool{"EXTERNAL": true, "ANONYMOUS": true}

// authenticator returns the Authenticator the flags ask for, or nil.
// host binds the credentials to the server they were given for.
func (o *connOptions) authenticator(host string) (auth.Authenticator, error) {
	mech := strings.ToUpper(o.mech)
	if mech == "NEGOTIATE" || mech == "AUTO" {
		mech = ""
	}
	if o.user == "" && mech == "" {
		if o.passwordFile != "" || o.passwordEnv != "" || o.authzid != "" {
			return nil, failf(exitUsage, "--password-file, --password-env and --authzid need --user")
		}
		return nil, nil
	}
	if mech != "" {
		if _, err := auth.Lookup(mech); err != nil {
			return nil, failf(exitUsage, "--auth %s: unknown mechanism (known: %s)", o.mech, strings.Join(auth.Mechanisms(), " "))
		}
	}
	if o.user == "" && !noSecretMechanisms[mech] {
		return nil, failf(exitUsage, "--auth %s needs --user", mech)
	}
	cfg := auth.Config{
		Credentials:   auth.Credentials{Identity: o.authzid, Username: o.user, Host: host},
		AllowInsecure: o.insecureAuth,
	}
	if mech != "" {
		cfg.Mechanisms = []string{mech}
	}
	if o.insecureAuth && !o.warnedInsAut {
		o.warnedInsAut = true
		fmt.Fprintf(o.stderr, "%s: WARNING: --allow-insecure-auth: credentials may be sent over an unencrypted connection\n", prog)
	}
	if !noSecretMechanisms[mech] {
		secret, err := o.secret()
		if err != nil {
			return nil, err
		}
		if oauthMechanisms[mech] {
			cfg.Token = func(context.Context) (string, error) { return secret, nil }
		} else {
			cfg.Password = secret
		}
	} else if o.passwordFile != "" || o.passwordEnv != "" {
		return nil, failf(exitUsage, "--auth %s takes no password", mech)
	}
	if err := cfg.Credentials.Validate(); err != nil {
		return nil, failf(exitConfig, "%v", err)
	}
	return cfg, nil
}

// secret reads the password or token from --password-file,
// --password-env, or, failing both, from the terminal, once.
func (o *connOptions) secret() (string, error) {
	if o.secretRead {
		return o.secretVal, nil
	}
	s, err := o.readSecret()
	if err == nil {
		o.secretRead, o.secretVal = true, s
	}
	return s, err
}

func (o *connOptions) readSecret() (string, error) {
	switch {
	case o.passwordFile != "" && o.passwordEnv != "":
		return "", failf(exitUsage, "give --password-file or --password-env, not both")
	case o.passwordFile != "":
		return readSecretFile(o.passwordFile, o.stderr)
	case o.passwordEnv != "":
		v, ok := os.LookupEnv(o.passwordEnv)
		if !ok {
			return "", failf(exitConfig, "--password-env: environment variable %s is not set", o.passwordEnv)
		}
		if v == "" {
			return "", failf(exitConfig, "--password-env: environment variable %s is empty", o.passwordEnv)
		}
		return v, nil
	}
	if o.noPrompt {
		return "", failf(exitConfig, "user %s has no password: set $%s", o.user, envPasswordFile)
	}
	return promptSecret(fmt.Sprintf("Password for %s: ", o.user))
}

// readSecretFile returns the first line of path, without its line ending.
func readSecretFile(path string, stderr io.Writer) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", failf(exitConfig, "--password-file: %v", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(stderr, "%s: warning: password file %s is accessible by other users (mode %04o); chmod 600 it\n", prog, path, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", failf(exitConfig, "--password-file: %v", err)
	}
	s := string(b)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		if strings.TrimSpace(s[i+1:]) != "" {
			return "", failf(exitConfig, "--password-file: %s holds more than one line", path)
		}
		s = s[:i]
	}
	s = strings.TrimSuffix(s, "\r")
	if s == "" {
		return "", failf(exitConfig, "--password-file: %s is empty", path)
	}
	return s, nil
}

// promptSecret asks for the password on the controlling terminal, never on
// stdin, which carries the message.
func promptSecret(prompt string) (string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if tty != nil {
			tty.Close()
		}
		return "", failf(exitUsage, "--user needs --password-file FILE or --password-env VAR (no terminal to ask on)")
	}
	defer tty.Close()
	fmt.Fprint(tty, prompt)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return "", failf(exitConfig, "reading the password: %v", err)
	}
	if len(b) == 0 {
		return "", failf(exitConfig, "empty password")
	}
	return string(b), nil
}
