package ui

import (
	"strings"
	"testing"
)

func TestEvaluate(t *testing.T) {
	tests := []struct {
		pass   string
		accept bool
		reason string
	}{
		{"", false, "Choose"},
		{"short", false, "too short"},
		{"password1234", false, "most common"},
		{"Password 123!", false, "most common"},
		{"qwertyuiop12", false, ""},
		{"aaaaaaaaaaaaaaaa", false, "too easy"},
		{"abcdefghijklmnop", false, "sequence"},
		{"1234567890123", false, ""},
		{"passwordpassword", false, "most common"},
		{"red red red red red", false, "too easy"},
		{"orbit lantern cactus violin", true, ""},
		{"Tr0ub4dor&3-xylophone", true, ""},
		{"kestrel-7-umbrella-quartz", true, ""},
		{"zq8#Lm2!vR9@wT", true, ""},
	}
	for _, tt := range tests {
		s := Evaluate(tt.pass)
		if (s.Reason == "") != tt.accept {
			t.Errorf("%q: accepted=%v (bits %d, reason %q), want accepted=%v", tt.pass, s.Reason == "", s.Bits, s.Reason, tt.accept)
		}
		if tt.reason != "" && !strings.Contains(strings.ToLower(s.Reason), strings.ToLower(tt.reason)) {
			t.Errorf("%q: reason %q does not mention %q", tt.pass, s.Reason, tt.reason)
		}
		if !tt.accept && s.Hint == "" && s.Reason != "" && tt.pass != "" {
			t.Errorf("%q: refused without a hint", tt.pass)
		}
	}
}
