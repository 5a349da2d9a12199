package main

import (
	"errors"
	"io/fs"

	"github.com/mailwire/mailwire/config"
	"github.com/mailwire/mailwire/transport"
)

// fromConfig builds the transport of a profile of a configuration file
// (package config). Flags given on the command line override the
// profile's settings on each SMTP or LMTP transport it builds, the members
// of a failover included: --ca, --cert and --key are merged into its TLS
// configuration, --user and --auth replace its authentication, --helo its
// EHLO name; --debug shows the transcript of every session.
func (o *connOptions) fromConfig(path, profile string) (*target, error) {
	cfg, err := config.Load(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, failf(exitConfig, "--config: %v", err)
		}
		return nil, failf(exitConfig, "%v", err)
	}
	var adjustErr error
	opts := []config.Option{config.WithAdjust(func(t transport.Transport) {
		if adjustErr == nil {
			adjustErr = o.adjust(t, true)
		}
	})}
	if o.debug {
		opts = append(opts, config.WithDebug(o.stderr))
	}
	tr, err := cfg.Transport(profile, opts...)
	if adjustErr != nil {
		return nil, adjustErr
	}
	if err != nil {
		return nil, failf(exitConfig, "%v", err)
	}
	if o.insecure {
		o.warnInsecure()
	}
	name := profile
	if name == "" {
		name = cfg.Default()
	}
	return newTarget(tr, path+":"+name), nil
}
