package sqs

import (
	"strings"
	"testing"
)

func TestValidNumber(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"0", true}, {"-12.5", true}, {"+3", true}, {".5", true}, {"5.", true}, {"1e10", true}, {"-1.5E-120", true},
		{strings.Repeat("9", 38), true}, {"0000" + strings.Repeat("9", 38), true}, {"1." + strings.Repeat("0", 37), true},
		{strings.Repeat("9", 39), false}, {"", false}, {"NaN", false}, {"Inf", false}, {"-Infinity", false},
		{"0x1p4", false}, {"1_0", false}, {"1e", false}, {"1e1000", false}, {" 1", false}, {"1.2.3", false}, {"--1", false},
	} {
		if got := validNumber(tc.in); got != tc.ok {
			t.Errorf("validNumber(%q) = %v, want %v", tc.in, got, tc.ok)
		}
	}
}

func TestValidText(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"plain", true}, {"tab\tnl\ncr\r", true}, {"héllo ✓ 😀", true}, {"\uFFFD", true}, {"\U0010FFFF", true},
		{"nul\x00", false}, {"bell\x07", false}, {"\xff", false}, {"\uFFFE", false}, {"half\xed\xa0\x80", false},
	} {
		if got := validText(tc.in); got != tc.ok {
			t.Errorf("validText(%q) = %v, want %v", tc.in, got, tc.ok)
		}
	}
	if got := sqsText([]byte("a\x00b\xffc")); got != "a\uFFFDb\uFFFDc" {
		t.Errorf("sqsText = %q", got)
	}
}
