package terraform

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test binary stands in for a child process in the runner's unit tests
// (TFSH_TEST_CHILD names what it does), as terraform-exec's tests do.
func TestMain(m *testing.M) {
	switch os.Getenv("TFSH_TEST_CHILD") {
	case "":
		os.Exit(m.Run())
	case "lines":
		// N lines to stdout and every tenth to stderr, PAUSE apart.
		n, _ := strconv.Atoi(os.Getenv("N"))
		pause, _ := time.ParseDuration(os.Getenv("PAUSE"))
		for i := range n {
			fmt.Fprintf(os.Stdout, "stdout line %d\n", i)
			if i%10 == 0 {
				fmt.Fprintf(os.Stderr, "stderr line %d\n", i)
			}
			// Spins rather than sleeps: a sleep this short takes about a
			// millisecond on a loaded machine, a timer's granularity.
			for t := time.Now(); time.Since(t) < pause; {
			}
		}
		os.Exit(3)
	case "bulk":
		// MB megabytes to stdout in one go.
		mb, _ := strconv.Atoi(os.Getenv("MB"))
		os.Stdout.Write(bytes.Repeat([]byte("0123456789abcde\n"), mb<<16))
		os.Exit(0)
	case "leave":
		// A background process that keeps the output open, then exit.
		bg := exec.Command(os.Args[0])
		bg.Env = append(os.Environ(), "TFSH_TEST_CHILD=sleep")
		bg.Stdout, bg.Stderr = os.Stdout, os.Stderr
		if err := bg.Start(); err != nil {
			os.Exit(9)
		}
		fmt.Println("left", bg.Process.Pid)
		os.Exit(0)
	case "sleep":
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(8)
}

// writes is a recorder that keeps what it gets and counts its writes.
type writes struct {
	mu sync.Mutex
	b  bytes.Buffer
	n  int
}

func (w *writes) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	return w.b.Write(p)
}

func (w *writes) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func runChild(t *testing.T, env ...string) (Result, *bytes.Buffer, *bytes.Buffer, map[string]*writes) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	recs := map[string]*writes{"stdout": {}, "stderr": {}}
	done := make(chan Result, 1)
	go func() {
		done <- Run(context.Background(), RunSpec{
			Path:   os.Args[0],
			Env:    append(os.Environ(), env...),
			Stdout: &stdout,
			Stderr: &stderr,
			Record: func(s string) io.Writer { return recs[s] },
		})
	}()
	select {
	case res := <-done:
		return res, &stdout, &stderr, recs
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not end in 30 s")
	}
	return Result{}, nil, nil, nil
}

func expectedLines(prefix string, n, every int) string {
	var b strings.Builder
	for i := 0; i < n; i += every {
		fmt.Fprintf(&b, "%s line %d\n", prefix, i)
	}
	return b.String()
}

func TestRelayCopiesBothStreamsWhole(t *testing.T) {
	res, stdout, stderr, recs := runChild(t, "TFSH_TEST_CHILD=lines", "N=500", "PAUSE=50us")
	if res.Err != nil || res.ExitCode != 3 {
		t.Fatalf("result %+v, want exit code 3", res)
	}
	wantOut, wantErr := expectedLines("stdout", 500, 1), expectedLines("stderr", 500, 10)
	if stdout.String() != wantOut || recs["stdout"].String() != wantOut {
		t.Errorf("stdout: user got %d bytes, recorder %d, want %d in order", stdout.Len(), len(recs["stdout"].String()), len(wantOut))
	}
	if stderr.String() != wantErr || recs["stderr"].String() != wantErr {
		t.Errorf("stderr: user got %q, recorder %q, want %q", stderr, recs["stderr"], wantErr)
	}
}

// Lines written close together come in fewer reads than there are lines:
// what saves tfsh's wake-ups (BENCHMARKS.md). With a read per line, as
// os/exec's copy does, the recorder gets about one write per line.
func TestRelayBatchesLinesWrittenCloseTogether(t *testing.T) {
	const n = 400
	res, stdout, _, recs := runChild(t, "TFSH_TEST_CHILD=lines", fmt.Sprintf("N=%d", n), "PAUSE=100us")
	if res.ExitCode != 3 || stdout.String() != expectedLines("stdout", n, 1) {
		t.Fatalf("exit %d, stdout %d bytes: the output is not whole", res.ExitCode, stdout.Len())
	}
	got := recs["stdout"].n
	t.Logf("%d lines in %d reads", n, got)
	if got > n/4 {
		t.Errorf("%d lines came in %d reads, want at most %d: lines are not batched", n, got, n/4)
	}
}

func TestRelayStreamsBulkOutput(t *testing.T) {
	res, stdout, _, recs := runChild(t, "TFSH_TEST_CHILD=bulk", "MB=16")
	if res.ExitCode != 0 {
		t.Fatalf("exit %d", res.ExitCode)
	}
	want := bytes.Repeat([]byte("0123456789abcde\n"), 16<<16)
	if !bytes.Equal(stdout.Bytes(), want) || recs["stdout"].String() != string(want) {
		t.Fatalf("user got %d bytes, recorder %d, want %d", stdout.Len(), len(recs["stdout"].String()), len(want))
	}
}

// A process the child leaves behind with its output open (a provisioner's
// background job) does not keep tfsh waiting beyond relayGrace.
func TestRelayGivesUpOnOutputLeftOpen(t *testing.T) {
	defer func(g time.Duration) { relayGrace = g }(relayGrace)
	relayGrace = 200 * time.Millisecond
	res, stdout, _, _ := runChild(t, "TFSH_TEST_CHILD=leave")
	var pid int
	if _, err := fmt.Sscanf(stdout.String(), "left %d", &pid); err != nil {
		t.Fatalf("stdout %q: %v", stdout, err)
	}
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
		p.Wait()
	}
	if res.ExitCode != 0 || res.Err != nil {
		t.Fatalf("result %+v", res)
	}
}
