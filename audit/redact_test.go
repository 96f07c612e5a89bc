package audit

import "testing"

// FuzzStreamRedaction: redacting a stream written in pieces of any size
// stores the same bytes as redacting it whole, so a secret split across
// writes is never stored.
func FuzzStreamRedaction(f *testing.F) {
	f.Add("a hunter2secret b", 3)
	f.Add("hunter2secrethunter2secret", 1)
	f.Fuzz(func(t *testing.T, text string, split int) {
		r := NewRedactor("hunter2secret", "tok3n")
		s := streamRedactor{r: r}
		var got []byte
		if split <= 0 {
			split = 1
		}
		for i := 0; i < len(text); i += split {
			got = append(got, s.push([]byte(text[i:min(i+split, len(text))]))...)
		}
		got = append(got, s.flush()...)
		if want := r.String(text); string(got) != want {
			t.Fatalf("streamed %q, whole %q", got, want)
		}
	})
}
