package config_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/config"
)

// testSecret is the value of every secret in these tests; no error may
// show it.
const testSecret = "S3cret-hunter2"

// A table of malformed configurations and the exact errors they produce,
// as docs/config.md documents them. Each names the file, the line and the
// key.
func TestMalformed(t *testing.T) {
	tests := []struct {
		name string
		yaml []byte
		want string // the whole error; "$DIR" is the temporary directory
		is   error  // a sentinel the error must match, if any
	}{
		{
			name: "unknown top-level key",
			yaml: yamlFile(
				"defualt: work", // 1
				"profiles: {work: {transport: {address: a.example.org:25}}}",
			),
			want: "bad.yaml:1: defualt: unknown key; did you mean default?",
		},
		{
			name: "unknown transport key",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      kind: smtp",
				"      adress: smtp.example.org:587", // 5
			),
			want: "bad.yaml:5: profiles.work.transport.adress: unknown key; did you mean address?",
		},
		{
			name: "unknown profile key",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport: {address: a.example.org:25}",
				"    middlewares: []", // 4
			),
			want: "bad.yaml:4: profiles.work.middlewares: unknown key; did you mean middleware?",
		},
		{
			// A key close to none of the mapping's keys may be a password
			// typed where a key belongs: the error names its line and its
			// mapping, and lists the keys the mapping takes.
			name: "unknown transport key, not shown",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      kind: smtp",
				"      address: 127.0.0.1:3525",
				"      \""+testSecret+"\": 1", // 6
			),
			want: "bad.yaml:6: profiles.work.transport: unknown key (not shown: it may be a secret); valid keys: kind, network, address, security, local_name, tls, dialer, auth, pool, require_all_recipients, disable_pipelining, disable_chunking",
		},
		{
			name: "unknown auth key, not shown",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      auth:",
				"        username: alice",
				"        "+testSecret+": x", // 7
				"        password_env: SMTP_PASSWORD",
			),
			want: "bad.yaml:7: profiles.work.transport.auth: unknown key (not shown: it may be a secret); valid keys: mechanism, mechanisms, identity, username, password_env, password_file, password, token_env, token_file, token, allow_insecure",
		},
		{
			name: "unknown top-level key, not shown",
			yaml: yamlFile(
				"profiles: {work: {transport: {address: a.example.org:25}}}",
				testSecret+":", // 2
			),
			want: "bad.yaml:2: unknown key (not shown: it may be a secret); valid keys: default, profiles",
		},
		{
			name: "unknown middleware entry key, not shown",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport: {address: a.example.org:25}",
				"    middleware:",
				"      - name: retry",
				"        "+testSecret+": 1", // 6
			),
			want: "bad.yaml:6: profiles.work.middleware[0]: unknown key (not shown: it may be a secret); valid keys: name, with",
		},
		{
			name: "unknown middleware parameter, not shown",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport: {address: a.example.org:25}",
				"    middleware:",
				"      - name: timeout",
				"        with: {duration: 1m, "+testSecret+": 1}", // 6
			),
			want: "bad.yaml:6: profiles.work.middleware[0].with: unknown key (not shown: it may be a secret); valid keys: duration",
		},
		{
			name: "unknown key of a marked literal, not shown",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      auth:",
				"        username: alice",
				"        password: {value: x, insecure_literal: true,",
				"                   "+testSecret+": 1}", // 8
			),
			want: "bad.yaml:8: profiles.work.transport.auth.password: unknown key (not shown: it may be a secret); valid keys: value, insecure_literal",
		},
		{
			name: "unknown key close to kind",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: a.example.org:25",
				"      knd: smtp", // 5
			),
			want: "bad.yaml:5: profiles.work.transport.knd: unknown key; did you mean kind?",
		},
		{
			// An unknown key given twice is reported as unknown, at its
			// first line: as a duplicate it would be shown.
			name: "unknown key given twice, not shown",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: a.example.org:25",
				"      "+testSecret+": 1", // 5
				"      "+testSecret+": 1",
			),
			want: "bad.yaml:5: profiles.work.transport: unknown key (not shown: it may be a secret); valid keys: kind, network, address, security, local_name, tls, dialer, auth, pool, require_all_recipients, disable_pipelining, disable_chunking",
		},
		{
			name: "duplicate kind",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      kind: smtp",
				"      address: a.example.org:25",
				"      kind: lmtp", // 6
			),
			want: "bad.yaml:6: profiles.work.transport.kind: duplicate key (first at line 4)",
		},
		{
			name: "duplicate profile",
			yaml: yamlFile(
				"profiles:",
				"  work: {transport: {address: a.example.org:25}}",
				"  work: {transport: {address: b.example.org:25}}", // 3
			),
			want: "bad.yaml:3: profiles.work: duplicate key (first at line 2)",
		},
		{
			// A profile is a mapping: a line that is not one, at the
			// indentation of the profiles, may be a pasted secret.
			name: "profile not a mapping, not shown",
			yaml: yamlFile(
				"profiles:",
				"  work: {transport: {address: a.example.org:25}}",
				"  \""+testSecret+"\": 1", // 3
			),
			want: "bad.yaml:3: profiles: an entry is an integer, not a mapping (its name is not shown: it may be a secret)",
		},
		{
			name: "empty profile, not shown",
			yaml: yamlFile(
				"default: home",
				"profiles:",
				"  work: {transport: {address: a.example.org:25}}",
				"  "+testSecret+":", // 4
			),
			want: "bad.yaml:4: profiles: empty profile: it needs a transport (its name is not shown: it may be a secret)",
		},
		{
			// An alias is text of the file: a password that starts with *.
			name: "unknown alias, not shown",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      auth:",
				"        username: alice",
				"        password: {value: *"+testSecret+", insecure_literal: true}", // 7
			),
			want: "bad.yaml:7: invalid YAML: an alias (*name) refers to no anchor; quote a value that starts with * (the name is not shown: it may be a secret)",
		},
		{
			// So is a local tag: a password that starts with !.
			name: "local tag, not shown",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      pool: {max_conns: !"+testSecret+" 3}", // 5
			),
			want: "bad.yaml:5: profiles.work.transport.pool.max_conns: want an integer, got a value with a local tag",
		},
		{
			// The secret written in place of its variable's name.
			name: "secret as the variable name, not shown",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      auth:",
				"        username: alice",
				"        password_env: "+testSecret, // 7
			),
			want: "bad.yaml:7: profiles.work.transport.auth.password_env: environment variable is not set (its name is not shown: it is not a usual variable name, and may be the secret itself)",
			is:   config.ErrMissingSecret,
		},
		{
			name: "duplicate key",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: a.example.org:25",
				"      address: b.example.org:25", // 5
			),
			want: "bad.yaml:5: profiles.work.transport.address: duplicate key (first at line 4)",
		},
		{
			name: "wrong type: integer",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport: {address: a.example.org:25}",
				"    middleware:",
				"      - name: retry",
				"        with: {max_attempts: five}", // 6
			),
			want: "bad.yaml:6: profiles.work.middleware[0].with.max_attempts: want an integer, got a string",
		},
		{
			name: "wrong type: list for a string",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: [a.example.org:25]", // 4
			),
			want: "bad.yaml:4: profiles.work.transport.address: want a string, got a list",
		},
		{
			name: "wrong type: boolean for a string",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: a.example.org:25",
				"      local_name: true", // 5
			),
			want: "bad.yaml:5: profiles.work.transport.local_name: want a string, got a boolean (quote it)",
		},
		{
			name: "wrong type: string for a boolean",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: a.example.org:25",
				"      tls: {insecure_skip_verify: yes}", // 5
			),
			want: "bad.yaml:5: profiles.work.transport.tls.insecure_skip_verify: want true or false, got a string",
		},
		{
			name: "unknown security mode",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: a.example.org:25",
				"      security: startls", // 5
			),
			want: `bad.yaml:5: profiles.work.transport.security: transport: unknown security mode "startls" (want starttls, opportunistic, tls or none)`,
		},
		{
			name: "unknown mechanism",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      auth:",
				"        username: alice",
				"        password_env: SMTP_PASSWORD",
				"        mechanism: PLAN", // 8
			),
			want: `bad.yaml:8: profiles.work.transport.auth.mechanism: unknown mechanism "PLAN" (forgotten import?)`,
			is:   auth.ErrUnknownMechanism,
		},
		{
			name: "unknown mechanism in a list",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      auth:",
				"        username: alice",
				"        password_env: SMTP_PASSWORD",
				"        mechanisms:",
				"          - SCRAM-SHA-256",
				"          - X-NOPE", // 10
			),
			want: `bad.yaml:10: profiles.work.transport.auth.mechanisms[1]: unknown mechanism "X-NOPE" (forgotten import?)`,
			is:   auth.ErrUnknownMechanism,
		},
		{
			name: "unknown transport kind",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      kind: smpt", // 4
				"      address: a.example.org:25",
			),
			want: `bad.yaml:4: profiles.work.transport.kind: unknown transport kind "smpt" (forgotten import?)`,
			is:   config.ErrUnknownTransport,
		},
		{
			name: "unknown middleware",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport: {address: a.example.org:25}",
				"    middleware:",
				"      - name: tracing",
				"      - name: retyr", // 6
			),
			want: `bad.yaml:6: profiles.work.middleware[1].name: unknown middleware "retyr" (forgotten import?)`,
			is:   config.ErrUnknownMiddleware,
		},
		{
			name: "middleware without a name",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport: {address: a.example.org:25}",
				"    middleware:",
				"      - with: {duration: 1m}", // 5
			),
			want: `bad.yaml:5: profiles.work.middleware[0].name: required`,
		},
		{
			name: "empty middleware entry",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport: {address: a.example.org:25}",
				"    middleware:",
				"      - name: tracing",
				"      -", // 6
			),
			want: `bad.yaml:6: profiles.work.middleware[1]: empty entry: it needs a name`,
		},
		{
			name: "middleware parameters not a mapping",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport: {address: a.example.org:25}",
				"    middleware:",
				"      - name: timeout",
				"        with: 2m", // 6
			),
			want: `bad.yaml:6: profiles.work.middleware[0].with: want a mapping, got a string`,
		},
		{
			name: "bad duration",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: a.example.org:25",
				"      dialer:",
				"        timeout: 30", // 6
			),
			want: `bad.yaml:6: profiles.work.transport.dialer.timeout: invalid duration "30" (write a number with a unit, such as 30s, 2m or 1h)`,
		},
		{
			name: "missing secret: environment variable",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      auth:",
				"        username: alice",
				"        password_env: NOT_SET_ANYWHERE", // 7
			),
			want: `bad.yaml:7: profiles.work.transport.auth.password_env: environment variable NOT_SET_ANYWHERE is not set`,
			is:   config.ErrMissingSecret,
		},
		{
			name: "missing secret: empty environment variable",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      auth:",
				"        username: alice",
				"        password_env: EMPTY_PASSWORD", // 7
			),
			want: `bad.yaml:7: profiles.work.transport.auth.password_env: environment variable EMPTY_PASSWORD is empty`,
			is:   config.ErrMissingSecret,
		},
		{
			name: "missing secret: file",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      auth:",
				"        username: alice",
				"        password_file: no-such-file", // 7
			),
			want: `bad.yaml:7: profiles.work.transport.auth.password_file: open $DIR/no-such-file: no such file or directory`,
			is:   config.ErrMissingSecret,
		},
		{
			name: "literal secret without the mark",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      auth:",
				"        username: alice",
				"        password: "+testSecret, // 7
			),
			want: `bad.yaml:7: profiles.work.transport.auth.password: a secret written in the file must be marked: use password_env or password_file, or password: {value: "...", insecure_literal: true}`,
		},
		{
			name: "literal secret with the mark false",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      auth:",
				"        username: alice",
				"        password: {value: "+testSecret+", insecure_literal: false}", // 7
			),
			want: `bad.yaml:7: profiles.work.transport.auth.password: a secret written in the file needs insecure_literal: true`,
		},
		{
			name: "literal secret of the wrong type",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      auth:",
				"        username: alice",
				"        password: {value: ["+testSecret+"], insecure_literal: true}", // 7
			),
			want: `bad.yaml:7: profiles.work.transport.auth.password.value: want a string, got a list`,
		},
		{
			name: "two sources for one secret",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      auth:",
				"        username: alice",
				"        password_env: SMTP_PASSWORD",
				"        password_file: /run/secrets/smtp", // 8
			),
			want: `bad.yaml:8: profiles.work.transport.auth.password_file: password_env and password_file are both given; use one`,
		},
		{
			name: "auth without a credential",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      auth:", // 5
				"        username: alice",
			),
			want: `bad.yaml:5: profiles.work.transport.auth: needs password_env or password_file, or token_env or token_file`,
		},
		{
			name: "password without a username",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      auth:", // 5
				"        password_env: SMTP_PASSWORD",
			),
			want: `bad.yaml:5: profiles.work.transport.auth.username: required with a password`,
		},
		{
			name: "failover without members",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:", // 3
				"      kind: failover",
			),
			want: `bad.yaml:3: profiles.work.transport.members: required: a list of at least one transport, tried in order`,
		},
		{
			name: "failover with an empty list",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      kind: failover",
				"      members: []", // 5
			),
			want: `bad.yaml:5: profiles.work.transport.members: required: a list of at least one transport, tried in order`,
		},
		{
			name: "failover member with an unknown key",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      kind: failover",
				"      members:",
				"        - {address: a.example.org:25}",
				"        - address: b.example.org:25",
				"          securty: none", // 8
			),
			want: `bad.yaml:8: profiles.work.transport.members[1].securty: unknown key; did you mean security?`,
		},
		{
			name: "missing address",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:", // 3
				"      kind: smtp",
				"      security: none",
			),
			want: `bad.yaml:3: profiles.work.transport.address: required: host:port, or the path of a Unix socket`,
		},
		{
			name: "address without a port",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org", // 4
			),
			want: `bad.yaml:4: profiles.work.transport.address: want host:port, such as smtp.example.org:587, not "smtp.example.org"`,
		},
		{
			name: "profile without a transport",
			yaml: yamlFile(
				"profiles:",
				"  work:", // 2
				"    middleware: [{name: tracing}]",
			),
			want: `bad.yaml:2: profiles.work.transport: required`,
		},
		{
			name: "default names no profile",
			yaml: yamlFile(
				"default: home", // 1
				"profiles:",
				"  work: {transport: {address: a.example.org:25}}",
			),
			want: `bad.yaml:1: default: no profile "home" (the file has work)`,
		},
		{
			name: "no profiles",
			yaml: yamlFile(
				"default: work", // 1
			),
			want: `bad.yaml:1: profiles: required: a mapping of profile names to profiles`,
		},
		{
			name: "smtps with starttls",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      kind: smtps",
				"      address: smtp.example.org:465",
				"      security: starttls", // 6
			),
			want: `bad.yaml:6: profiles.work.transport.security: kind smtps always speaks TLS from the start; use kind smtp for starttls`,
		},
		{
			name: "lmtp on port 25",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      kind: lmtp",
				"      address: 127.0.0.1:25", // 5
			),
			want: `bad.yaml:5: profiles.work.transport.address: LMTP must not be used on port 25 (RFC 2033 section 1)`,
		},
		{
			name: "lmtp with implicit TLS",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      kind: lmtp",
				"      address: /run/dovecot/lmtp",
				"      security: tls", // 6
			),
			want: `bad.yaml:6: profiles.work.transport.security: LMTP takes none or starttls, not tls`,
		},
		{
			name: "client certificate without its key",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      tls:",
				"        cert_file: client.pem", // 6
			),
			want: `bad.yaml:6: profiles.work.transport.tls.cert_file: needs key_file too`,
		},
		{
			name: "missing CA file",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      tls:",
				"        ca_file: /nonexistent/ca.pem", // 6
			),
			want: `bad.yaml:6: profiles.work.transport.tls.ca_file: open /nonexistent/ca.pem: no such file or directory`,
		},
		{
			name: "old TLS version",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      tls: {min_version: 1.1}", // 5
			),
			want: `bad.yaml:5: profiles.work.transport.tls.min_version: unsupported TLS version "1.1" (want 1.2 or 1.3)`,
		},
		{
			name: "proxy credentials in the URL",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      dialer:",
				"        socks5: socks5://u:"+testSecret+"@127.0.0.1:1080", // 6
			),
			want: `bad.yaml:6: profiles.work.transport.dialer.socks5: credentials do not belong in the URL: use socks5_username and socks5_password_env or socks5_password_file`,
		},
		{
			name: "bad source address",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      dialer: {source_address: 192.0.2}", // 5
			),
			want: `bad.yaml:5: profiles.work.transport.dialer.source_address: "192.0.2" is not an IP address`,
		},
		{
			name: "pool: more idle than open connections",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      address: smtp.example.org:587",
				"      pool: {max_conns: 2,",
				"             max_idle: 4}", // 6
			),
			want: `bad.yaml:6: profiles.work.transport.pool.max_idle: 4 is more than max_conns (2)`,
		},
		{
			name: "ratelimit with nothing to limit",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport: {address: a.example.org:25}",
				"    middleware:",
				"      - name: ratelimit",
				"        with: {burst: 3}", // 6
			),
			want: `bad.yaml:6: profiles.work.middleware[0].with: needs per_second, concurrency or both`,
		},
		{
			name: "timeout without a duration",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport: {address: a.example.org:25}",
				"    middleware:",
				"      - name: timeout", // 5
			),
			want: `bad.yaml:5: profiles.work.middleware[0].with.duration: required: a positive duration such as 2m`,
		},
		{
			name: "logging level",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport: {address: a.example.org:25}",
				"    middleware:",
				"      - name: logging",
				"        with: {level: loud}", // 6
			),
			want: `bad.yaml:6: profiles.work.middleware[0].with.level: slog: level string "loud": unknown name`,
		},
		{
			name: "retry base longer than max",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport: {address: a.example.org:25}",
				"    middleware:",
				"      - name: retry",
				"        with:",
				"          base: 1m",
				"          max: 1s", // 8
			),
			want: `bad.yaml:8: profiles.work.middleware[0].with.max: base (1m0s) is longer than max (1s)`,
		},
		{
			name: "YAML syntax error",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport: {address: [a.example.org:25}", // 3
			),
			want: `bad.yaml:3: invalid YAML: did not find expected ',' or ']'`,
		},
		{
			name: "two documents",
			yaml: yamlFile(
				"profiles: {work: {transport: {address: a.example.org:25}}}",
				"---", // 2
				"profiles: {}",
			),
			want: `bad.yaml:2: more than one YAML document; a configuration is one`,
		},
		{
			name: "YAML syntax error: block",
			yaml: yamlFile(
				"profiles:",
				"  work:", // 2: the YAML parser names the line where the mapping it was reading begins
				"    transport: {address: a.example.org:25}",
				"  - other",
			),
			want: `bad.yaml:2: invalid YAML: did not find expected key`,
		},
		{
			name: "YAML syntax error: scanner",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport: @", // 3
			),
			want: `bad.yaml:3: invalid YAML: found character that cannot start any token`,
		},
		{
			name: "empty file",
			yaml: []byte("# nothing\n"),
			want: `bad.yaml: empty configuration`,
		},
		{
			name: "JSON",
			yaml: []byte("{\n  \"profiles\": {\n    \"work\": {\n      \"transport\": {\"address\": 25}\n    }\n  }\n}\n"),
			want: `bad.yaml:4: profiles.work.transport.address: want host:port, such as smtp.example.org:587, not "25"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SMTP_PASSWORD", testSecret)
			t.Setenv("EMPTY_PASSWORD", "")
			dir := t.TempDir()
			err := loadAndBuild(filepath.Join(dir, "bad.yaml"), tt.yaml)
			if err == nil {
				t.Fatalf("no error, want %s", tt.want)
			}
			want := strings.ReplaceAll(tt.want, "$DIR", dir)
			got := strings.TrimPrefix(err.Error(), dir+"/")
			if got != want {
				t.Errorf("error:\n got %s\nwant %s", got, want)
			}
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Errorf("error is %T, want a *config.Error", err)
			} else if ce.File != filepath.Join(dir, "bad.yaml") {
				t.Errorf("Error.File = %q", ce.File)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error does not match %v", tt.is)
			}
			if strings.Contains(err.Error(), testSecret) {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
}

// loadAndBuild parses data as the file name and builds every profile.
func loadAndBuild(name string, data []byte) error {
	cfg, err := config.Parse(name, data)
	if err != nil {
		return err
	}
	for _, p := range cfg.Profiles() {
		if _, err := cfg.Transport(p); err != nil {
			return err
		}
	}
	return nil
}

// The reports that found unknown keys echoed: a password typed where a key
// belongs never appears in the error, whose Key is then the path of the
// mapping and whose Line is the key's.
func TestUnknownKeyNotEchoed(t *testing.T) {
	tests := []struct {
		name, secret string
		yaml         []byte
		key          string
		line         int
	}{
		{
			name:   "transport",
			secret: "Tr0ub4dor&3",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      kind: smtp",
				"      address: 127.0.0.1:3525",
				`      "Tr0ub4dor&3": 1`, // 6
			),
			key:  "profiles.work.transport",
			line: 6,
		},
		{
			name:   "auth",
			secret: "s3cretpassw0rd",
			yaml: yamlFile(
				"profiles:",
				"  work:",
				"    transport:",
				"      kind: smtp",
				"      address: 127.0.0.1:3525",
				"      auth:",
				"        username: alice",
				"        password_env: SMTP_PASSWORD",
				"        s3cretpassw0rd: x", // 9
			),
			key:  "profiles.work.transport.auth",
			line: 9,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SMTP_PASSWORD", testSecret)
			_, err := config.Parse("k.yaml", tt.yaml)
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("Parse = %v, want a *config.Error", err)
			}
			if strings.Contains(err.Error(), tt.secret) || strings.Contains(ce.Key, tt.secret) {
				t.Errorf("the error shows the key: %v", err)
			}
			if ce.File != "k.yaml" || ce.Key != tt.key || ce.Line != tt.line {
				t.Errorf("Error = {File: %q, Line: %d, Key: %q}, want {k.yaml, %d, %q}", ce.File, ce.Line, ce.Key, tt.line, tt.key)
			}
			if !strings.HasPrefix(ce.Err.Error(), "unknown key (not shown: it may be a secret); valid keys: ") {
				t.Errorf("Err = %v", ce.Err)
			}
		})
	}
}
