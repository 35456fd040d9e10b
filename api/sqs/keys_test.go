package sqs

import (
	"maps"
	"testing"
)

func TestParseKeys(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want StaticKeys
		ok   bool
	}{
		{"AKID:secret", StaticKeys{"AKID": "secret"}, true},
		{"A:1,B:2", StaticKeys{"A": "1", "B": "2"}, true},
		{"# keys\nA:1\n\n B:x:y \n", StaticKeys{"A": "1", "B": "x:y"}, true}, // a secret may hold a colon
		{"", nil, false},
		{"# only a comment\n", nil, false},
		{"A", nil, false},
		{"A:", nil, false},
		{":s", nil, false},
		{"A:1,A:2", nil, false},
	} {
		got, err := ParseKeys(tc.in)
		if (err == nil) != tc.ok || (tc.ok && !maps.Equal(got, tc.want)) {
			t.Errorf("ParseKeys(%q) = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
