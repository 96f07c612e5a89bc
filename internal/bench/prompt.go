package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/creack/pty"

	"github.com/tfsh/tfsh/internal/auditgen"
	"github.com/tfsh/tfsh/internal/bench/result"
	"github.com/tfsh/tfsh/internal/lab"
)

// promptBench measures the go-prompt shell on a pseudo-terminal: time from
// starting tfsh to its first prompt, and from a keystroke to the
// completion menu it brings, on the local lab and on an S3 backend whose
// endpoints accept connections and never answer (a black hole); then, for
// each of sizes, the start on the local lab with a copy of a generated log
// of that many events (the log is opened, crashed sessions looked for and
// the history read before the first prompt).
func promptBench(tfsh, tf, examples string, n int, sizes []int) {
	work, err := os.MkdirTemp("", "tfsh-bench-prompt-")
	if err != nil {
		fail(err.Error())
	}
	defer os.RemoveAll(work)
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err.Error())
	}
	defer hole.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // never answered
			mu.Unlock()
		}
	}()
	cases := []struct{ name, backend string }{
		{"local state", ""},
		{"S3 + DynamoDB endpoints that never answer", fmt.Sprintf(`{"version":3,"backend":{"type":"s3","config":{"bucket":"b","key":"k","region":"us-east-1","dynamodb_table":"t","endpoint":"http://%[1]s","dynamodb_endpoint":"http://%[1]s","force_path_style":true}}}`, hole.Addr())},
	}
	fmt.Println("| backend | start to first prompt, median (ms) | max (ms) | keystroke to completion menu, median (ms) | max (ms) | goal |")
	fmt.Println("|---|---|---|---|---|---|")
	for i, c := range cases {
		dir := filepath.Join(work, fmt.Sprintf("case%d", i))
		copyConfig(examples, dir)
		env := lab.Env(benchEnv(work, tf), "TERM=xterm", "TFSH_AUDIT_DB="+filepath.Join(dir, "audit.db"))
		if c.backend != "" {
			os.MkdirAll(filepath.Join(dir, ".terraform"), 0o755)
			os.WriteFile(filepath.Join(dir, ".terraform", "terraform.tfstate"), []byte(c.backend), 0o644)
		}
		var starts, keys []float64
		for range n {
			s, k := promptOnce(tfsh, dir, env)
			starts, keys = append(starts, s), append(keys, k)
		}
		fmt.Printf("| %s | %.1f | %.1f | %.1f | %.1f | start ≤ 50 ms; never blocked |\n", c.name, median(starts), maxOf(starts), median(keys), maxOf(keys))
		emit("prompt", result.Record{Kind: "prompt", Row: c.name, Stats: []result.Stat{result.Of("start", "ms", starts), result.Of("keystroke to menu", "ms", keys)}})
	}
	mu.Lock()
	for _, c := range held {
		c.Close()
	}
	mu.Unlock()
	if len(sizes) == 0 {
		return
	}
	fmt.Printf("\nStart to first prompt by the size of the audit log (local state, %d starts each; each start adds a session to the copy):\n\n", n)
	fmt.Println("| audit log | start to first prompt, median (ms) | min | max | goal |")
	fmt.Println("|---|---|---|---|---|")
	dir := filepath.Join(work, "case0")
	for _, size := range append([]int{0}, sizes...) {
		db := filepath.Join(work, fmt.Sprintf("log-%d.db", size))
		name := "a new log"
		if size > 0 {
			path, err := auditgen.Cached(context.Background(), auditgen.Options{Events: size})
			if err != nil {
				fail(err.Error())
			}
			if err := auditgen.CopyFile(path, db); err != nil {
				fail(err.Error())
			}
			name = fmt.Sprintf("a copy of the log of %d events", size)
		}
		env := lab.Env(benchEnv(work, tf), "TERM=xterm", "TFSH_AUDIT_DB="+db)
		promptOnce(tfsh, dir, env) // warm: the page cache, a new log's creation
		var starts []float64
		for range n {
			s, _ := promptOnce(tfsh, dir, env)
			starts = append(starts, s)
		}
		fmt.Printf("| %s | %.1f | %.1f | %.1f | ≤ 50 ms |\n", name, median(starts), minOf(starts), maxOf(starts))
		emit("prompt", result.Record{Kind: "prompt-log", Row: name, Params: map[string]string{"events": strconv.Itoa(size)}, Stats: []result.Stat{result.Of("start", "ms", starts)}})
	}
}

// promptOnce starts tfsh on a pty and returns the milliseconds to its
// first prompt and from typing "pl" to the menu offering plan.
func promptOnce(tfsh, dir string, env []string) (float64, float64) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tfsh)
	cmd.Dir, cmd.Env = dir, env
	start := time.Now()
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		fail(err.Error())
	}
	defer ptmx.Close()
	var mu sync.Mutex
	var screen bytes.Buffer
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	waitScreen := func(want string) {
		for {
			mu.Lock()
			ok := strings.Contains(screen.String(), want)
			mu.Unlock()
			if ok {
				return
			}
			if ctx.Err() != nil {
				fail("prompt bench: never saw " + want + "\n" + screen.String())
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	waitScreen("]> ")
	first := time.Since(start)
	mu.Lock()
	screen.Reset()
	mu.Unlock()
	t0 := time.Now()
	ptmx.Write([]byte("pl"))
	waitScreen("show the changes an apply would make")
	key := time.Since(t0)
	ptmx.Write([]byte("\x03exit\r"))
	cmd.Wait()
	return ms(first), ms(key)
}
