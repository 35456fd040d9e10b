package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/spf13/pflag"
)

// addrValue is an --addr flag: host:port for the address serve listens
// on; for the client commands (urls set) also an http or https URL, for a
// server behind a reverse proxy. It is checked when set, so a bare port
// (--addr 17075) is refused with what to write instead, before any
// listen or dial; guessing 127.0.0.1 would silently pick a host for the
// user.
type addrValue struct {
	p    *string
	urls bool
}

var _ pflag.Value = addrValue{}

// addrVar defines an address flag stored in p, with value as its default.
func addrVar(fs *pflag.FlagSet, p *string, urls bool, name, value, usage string) {
	*p = value
	fs.Var(addrValue{p, urls}, name, usage)
}

func (v addrValue) Set(s string) error {
	if err := v.check(s); err != nil {
		return err
	}
	*v.p = s
	return nil
}

func (v addrValue) check(s string) error {
	want := "want host:port, e.g. 127.0.0.1:17075 or :17075"
	if v.urls {
		want = "want host:port or a URL, e.g. 127.0.0.1:17075, :17075 or http://127.0.0.1:17075"
	}
	if v.urls && strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("not an http or https URL: %s", want)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(s)
	if err == nil && port != "" && !strings.ContainsAny(host, "/?#") {
		return nil
	}
	if s != "" && strings.Trim(s, "0123456789") == "" {
		return fmt.Errorf("a bare port is not an address: %s", want)
	}
	return errors.New(want)
}

func (v addrValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v addrValue) Type() string { return "host:port" }
