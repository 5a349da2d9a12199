package main

import (
	_ "embed"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

//go:embed smtplib_client.py
var smtplibScript []byte

// findTool returns the path of an installed program, looking in PATH and in
// the Debian locations that root's PATH may lack.
func findTool(name string, extra ...string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range extra {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// findPython returns Debian's python3 (the first python3 on PATH may be
// another installation) if it has smtplib.
func findPython() string {
	for _, p := range []string{"/usr/bin/python3", findTool("python3")} {
		if p == "" {
			continue
		}
		if exec.Command(p, "-c", "import smtplib").Run() == nil {
			return p
		}
	}
	return ""
}

// smtplibCommand returns the command for one smtplib run.
func (h *harness) smtplibCommand(p *clientParams) *exec.Cmd {
	return exec.Command(h.python, h.smtplibPath,
		"--addr", p.Addr,
		"--n", strconv.Itoa(p.N),
		"--rcpts", strconv.Itoa(p.Rcpts),
		"--conns", strconv.Itoa(p.Conns),
		"--eml", p.Msg.EML)
}

// smtpSourceCommand returns the command for one smtp-source run: -d keeps
// each session's connection for all its messages, -s runs that many sessions
// in parallel, -m is the total number of messages, -F sends the message file
// (LF line endings; smtp-source sends CRLF and dot-stuffs).
func (h *harness) smtpSourceCommand(p *clientParams) *exec.Cmd {
	return exec.Command(h.smtpSource,
		"-d",
		"-s", strconv.Itoa(p.Conns),
		"-m", strconv.Itoa(p.N),
		"-r", strconv.Itoa(p.Rcpts),
		"-f", benchSender,
		"-t", "rcpt@bench.example",
		"-M", benchHelo,
		"-F", p.Msg.LF,
		p.Addr)
}
