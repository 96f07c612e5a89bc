package lock

import (
	"strings"
	"testing"
)

// FuzzParseInfo feeds ParseInfo arbitrary bytes, as a hostile or corrupt
// .lock.info file, DynamoDB Info attribute or .tflock object would. It must
// never panic, never accept a record without an ID, and what it accepts must
// survive the round trip through the JSON terraform writes.
func FuzzParseInfo(f *testing.F) {
	for _, s := range []string{
		`{"ID":"9a5b7c1e-0d6f-4e2a-8b3c-1f2e3d4c5b6a","Operation":"OperationTypeApply","Info":"","Who":"ana@laptop","Version":"1.5.7","Created":"2026-11-26T04:40:00.123456789Z","Path":"terraform.tfstate"}`,
		`{"ID":"x","Created":"2026-11-26T05:40:00+01:00"}`,
		`{"ID":"   "}`,
		`{"ID":1}`,
		`{}`,
		`null`,
		`[]`,
		``,
		`{"ID":"x","Created":"not a time"}`,
		`{"ID":"\ud800","Who":"\xff"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := ParseInfo("fuzz", data)
		if err != nil {
			if in != nil {
				t.Fatalf("ParseInfo returned %+v with error %v", in, err)
			}
			return
		}
		if strings.TrimSpace(in.ID) == "" {
			t.Fatalf("accepted a record without an ID: %q", data)
		}
		js, err := in.JSON()
		if err != nil {
			// A year outside 0..9999 parses but cannot be written back;
			// terraform never writes one.
			return
		}
		again, err := ParseInfo("fuzz", []byte(js))
		if err != nil {
			t.Fatalf("round trip of %q: %v", js, err)
		}
		if again.ID != in.ID || again.Operation != in.Operation || again.Info != in.Info || again.Who != in.Who ||
			again.Version != in.Version || again.Path != in.Path || !again.Created.Equal(in.Created) {
			t.Fatalf("round trip changed the record:\n%+v\n%+v", in, again)
		}
	})
}
