package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		wantErr  string
		wantCode int
		wantOut  string
	}{
		{"no command prints usage and fails", nil, "no command given", 2, "Usage:"},
		{"unknown command is a usage error", []string{"frobnicate"}, `unknown command "frobnicate"`, 2, "Usage:"},
		{"help succeeds", []string{"help"}, "", 0, "spool serve"},
		{"serve says it is not implemented yet", []string{"serve", "--data", t.TempDir()}, "not implemented yet", 1, ""},
		{"serve rejects unknown flags", []string{"serve", "--nope"}, "unknown flag", 1, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, &out, &errOut)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("run(%q) = %v", tc.args, err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("run(%q) = %v, want error containing %q", tc.args, err, tc.wantErr)
			}
			if err != nil && exitCode(err) != tc.wantCode {
				t.Fatalf("exit code %d, want %d", exitCode(err), tc.wantCode)
			}
			if !strings.Contains(out.String()+errOut.String(), tc.wantOut) {
				t.Fatalf("output %q does not contain %q", out.String()+errOut.String(), tc.wantOut)
			}
		})
	}
}
