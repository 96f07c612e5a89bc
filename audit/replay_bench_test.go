package audit_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/audit/audittest"
)

var (
	replayBenchKeep  = flag.String("replay-bench-keep", "", "BenchmarkReplayMemory keeps its audit logs in this directory (replay-NMB.db)")
	replayBenchSizes = flag.String("replay-bench-sizes", "1,10,100", "BenchmarkReplayMemory's session sizes, in MB of output")
)

func openKept(b *testing.B, path string) *audit.DB {
	b.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
	db, err := audit.Open(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// recordOutput records one session whose one command wrote size bytes of
// terraform-like text in 4 KiB writes, one millisecond apart, with a lock
// event every 1000 writes.
func recordOutput(b *testing.B, db *audit.DB, size int) audit.ReplayTarget {
	b.Helper()
	ctx := context.Background()
	clk := &audittest.Clock{}
	clk.Set(audittest.Base)
	db.Now = clk.Now
	s, _, err := db.StartSession(ctx, testInfo(), nil)
	if err != nil {
		b.Fatal(err)
	}
	c, err := s.StartCommand(ctx, audit.CommandInfo{Typed: []string{"apply"}, Subcommand: "apply"}, audit.Decision{Action: "allow"})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 ._-:=\"[]{}"
	line := make([]byte, 4096)
	w := c.Output(audit.TTY)
	for n, i := 0, 0; n < size; n, i = n+len(line), i+1 {
		for j := range line {
			line[j] = alphabet[rng.IntN(len(alphabet))]
		}
		line[len(line)-2], line[len(line)-1] = '\r', '\n'
		clk.Set(audittest.Base.Add(time.Duration(i) * time.Millisecond))
		if _, err := w.Write(line); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			if err := c.AppendAt(ctx, time.Time{}, "lock_wait", "lock-id", map[string]any{"source": "backend"}); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := c.End(ctx, audit.CommandEnd{Status: "ok"}); err != nil {
		b.Fatal(err)
	}
	if err := s.End(ctx, audit.SessionEnd{Status: "ok"}); err != nil {
		b.Fatal(err)
	}
	return audit.ReplayTarget{SessionID: s.ID}
}

// heapPeak follows the heap during a replay, which calls sample for each
// item: every item, the heap in use (garbage included, so it depends on
// when the collector ran); every 128th, the live heap after a collection
// (what the replay really holds).
type heapPeak struct {
	n           int
	inuse, live uint64
	ms          runtime.MemStats
}

func (h *heapPeak) sample() {
	h.n++
	if h.n%128 == 0 {
		runtime.GC()
		runtime.ReadMemStats(&h.ms)
		h.live = max(h.live, h.ms.HeapAlloc)
	} else {
		runtime.ReadMemStats(&h.ms)
	}
	h.inuse = max(h.inuse, h.ms.HeapInuse)
}

// BenchmarkReplayMemory replays sessions of 1, 10 and 100 MB of output
// into an asciicast writer (to io.Discard) and reports the live heap
// before and at its peak, the peak heap in use, and the bytes allocated
// (all garbage) per byte of output: the peaks must not grow with the
// session. "all-frames" keeps every frame, as a reader that
// loads a session whole would, to show what growth looks like.
//
//	go test ./audit -run XXX -bench ReplayMemory -benchtime 1x [-replay-bench-sizes 1,10,100] [-replay-bench-keep DIR]
func BenchmarkReplayMemory(b *testing.B) {
	for _, f := range strings.Split(*replayBenchSizes, ",") {
		mb, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || mb <= 0 {
			b.Fatalf("-replay-bench-sizes %q: give sizes in MB, like 1,10,100", *replayBenchSizes)
		}
		for _, mode := range []string{"streamed", "all-frames"} {
			if mode == "all-frames" && mb > 10 {
				continue
			}
			b.Run(fmt.Sprintf("%s/%dMB", mode, mb), func(b *testing.B) {
				db := MustOpenDB(b)
				if *replayBenchKeep != "" && mode == "streamed" {
					// Kept for measuring tfsh replay itself (BENCHMARKS.md).
					db = openKept(b, filepath.Join(*replayBenchKeep, fmt.Sprintf("replay-%dMB.db", mb)))
				}
				size := mb << 20
				target := recordOutput(b, db, size)
				ctx := context.Background()
				b.SetBytes(int64(size))
				var h heapPeak
				var before, after runtime.MemStats
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					runtime.GC()
					runtime.ReadMemStats(&before)
					h = heapPeak{inuse: before.HeapInuse, live: before.HeapAlloc}
					cw, err := audit.NewCastWriter(io.Discard, audit.CastHeader{Width: 80, Height: 24, Timestamp: 1})
					if err != nil {
						b.Fatal(err)
					}
					var kept [][]byte
					err = db.Replay(ctx, target, func(it audit.ReplayItem) error {
						h.sample()
						if it.Kind != audit.ReplayOutput {
							return nil
						}
						if mode == "all-frames" {
							kept = append(kept, append([]byte(nil), it.Frame.Data...))
						}
						return cw.Output(it.Offset, it.Frame.Stream, it.Frame.Data)
					})
					if err != nil {
						b.Fatal(err)
					}
					if err := cw.Close(); err != nil {
						b.Fatal(err)
					}
					runtime.ReadMemStats(&after)
					runtime.KeepAlive(kept)
				}
				b.ReportMetric(float64(before.HeapAlloc)/(1<<20), "start-live-MB")
				b.ReportMetric(float64(h.live)/(1<<20), "peak-live-MB")
				b.ReportMetric(float64(h.inuse)/(1<<20), "peak-inuse-MB")
				b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(size), "alloc-B/B")
			})
		}
	}
}
