package main

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestSizeFlag(t *testing.T) {
	cases := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"0", 0, ""},
		{"1048576", 1 << 20, ""},
		{"512K", 512 << 10, ""},
		{"512KiB", 512 << 10, ""},
		{"512KB", 512 << 10, ""},
		{"512k", 512 << 10, ""},
		{"1M", 1 << 20, ""},
		{"1G", 1 << 30, ""},
		{"2T", 2 << 40, ""},
		{"1 GiB", 1 << 30, ""},
		{"100B", 100, ""},
		{" 7 ", 7, ""},
		{"9223372036854775807", 1<<63 - 1, ""},
		{"9223372036854775808", 0, "too large"},
		{"8388608T", 0, "too large"},
		{"", 0, "want a size"},
		{"lots", 0, "want a size"},
		{"-1", 0, "want a size"},
		{"1.5G", 0, "want a size"},
		{"1X", 0, "want a size"},
		{"1GG", 0, "want a size"},
		{"1iB", 0, "want a size"},
		{"0x10", 0, "want a size"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			var n int64
			sizeVar(fs, &n, "size", 42, "")
			err := fs.Set("size", tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Set(%q) = %v (n = %d), want an error containing %q", tc.in, err, n, tc.wantErr)
				}
				if n != 42 {
					t.Fatalf("a refused Set(%q) changed the value to %d", tc.in, n)
				}
				return
			}
			if err != nil || n != tc.want {
				t.Fatalf("Set(%q) = %d, %v; want %d", tc.in, n, err, tc.want)
			}
			// What --help shows as the default must parse back to it.
			if back, err := parseSize(formatSize(n)); err != nil || back != n {
				t.Fatalf("formatSize(%d) = %q parses back as %d, %v", n, formatSize(n), back, err)
			}
		})
	}
	if got := formatSize(256 << 10); got != "256KiB" {
		t.Errorf("formatSize(256 KiB) = %q", got)
	}
	if got := formatSize(1000); got != "1000" {
		t.Errorf("formatSize(1000) = %q", got)
	}
}

func TestAddrFlag(t *testing.T) {
	cases := []struct {
		in      string
		urls    bool
		wantErr string
	}{
		{"127.0.0.1:7070", false, ""},
		{":17075", false, ""},
		{"[::1]:7070", false, ""},
		{"localhost:0", false, ""},
		{"17075", false, "a bare port is not an address: want host:port, e.g. 127.0.0.1:17075 or :17075"},
		{"17075", true, "a bare port is not an address: want host:port or a URL"},
		{"localhost", false, "want host:port"},
		{"", false, "want host:port"},
		{"host:", false, "want host:port"},
		{"http://127.0.0.1:7070", false, "want host:port"},
		{"http://127.0.0.1:7070", true, ""},
		{"https://spool.example.com/prefix", true, ""},
		{"ftp://host:21", true, "not an http or https URL"},
		{"http://", true, "not an http or https URL"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			var s string
			err := addrValue{&s, tc.urls}.Set(tc.in)
			if tc.wantErr == "" {
				if err != nil || s != tc.in {
					t.Fatalf("Set(%q) = %v, value %q", tc.in, err, s)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Set(%q) = %v, want an error containing %q", tc.in, err, tc.wantErr)
			}
		})
	}
}
