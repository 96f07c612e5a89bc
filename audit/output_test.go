package audit

import (
	"bytes"
	"testing"
)

func TestChunkCompressor(t *testing.T) {
	note := []byte("tfsh: refused by rule \"no-unlocked-writes\" (built-in): apply writes state\n")
	big := bytes.Repeat([]byte("terraform_data.r: Refreshing state...\n"), storedMax/38+1)
	roundTrip := func(t *testing.T, raw, z []byte) {
		t.Helper()
		got, err := inflateChunk("c", 0, len(raw), z)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, raw) {
			t.Fatalf("inflated %d bytes, want the %d stored", len(got), len(raw))
		}
	}
	t.Run("a small chunk of notes is one stored block and makes no compressor", func(t *testing.T) {
		for _, raw := range [][]byte{nil, note, bytes.Repeat([]byte("x"), storedMax)} {
			var z chunkCompressor
			out, err := z.compress(raw, true)
			if err != nil {
				t.Fatal(err)
			}
			if z.w != nil {
				t.Fatalf("a %d-byte chunk made a flate writer", len(raw))
			}
			if len(out) != len(raw)+5 || out[0] != 1 {
				t.Fatalf("a %d-byte chunk stored as %d bytes starting %#x, want a stored block of %d", len(raw), len(out), out[0], len(raw)+5)
			}
			roundTrip(t, raw, out)
		}
	})
	t.Run("a larger chunk of notes is compressed", func(t *testing.T) {
		var z chunkCompressor
		out, err := z.compress(big, true)
		if err != nil {
			t.Fatal(err)
		}
		if z.w == nil || len(out) >= len(big)/4 {
			t.Fatalf("%d bytes stored as %d (writer %v), want compressed", len(big), len(out), z.w != nil)
		}
		roundTrip(t, big, out)
	})
	t.Run("terraform's output is compressed, however small", func(t *testing.T) {
		var z chunkCompressor
		out, err := z.compress(bytes.Repeat(note, 4), false)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) >= len(note)*2 {
			t.Fatalf("%d bytes stored as %d, want compressed", len(note)*4, len(out))
		}
		roundTrip(t, bytes.Repeat(note, 4), out)
	})
}
