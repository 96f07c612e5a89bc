package main

import "testing"

func TestLastLockTimeout(t *testing.T) {
	for _, c := range []struct {
		argv []string
		want string
	}{
		{[]string{"plan", "-input=false"}, ""},
		{[]string{"plan", "-lock-timeout=60s", "-lock-timeout=0s"}, "0s"},
		{[]string{"apply", "-lock-timeout=0s", "-lock-timeout=4m59s", "tfplan"}, "4m59s"},
		{[]string{"apply", "--lock-timeout=0s", "tfplan"}, "0s"},
		{[]string{"apply", "-lock-timeout=1s", "--", "-lock-timeout=0s"}, "1s"},
	} {
		if got := lastLockTimeout(c.argv); got != c.want {
			t.Errorf("lastLockTimeout(%q)=%q, want %q", c.argv, got, c.want)
		}
	}
}
