package audit_test

import (
	"bytes"
	"compress/flate"
	"context"
	"database/sql"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

func syscallUmask(m int) int { return syscall.Umask(m) }

// deadPID returns the PID of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestVerifyFindsRewrittenOutput(t *testing.T) {
	db := MustOpenDB(t)
	record(t, db, nil, "Apply complete!\n")
	// A valid chunk with different content: offset 0, stdout, "evil\n".
	var z bytes.Buffer
	fw, _ := flate.NewWriter(&z, flate.BestSpeed)
	raw := []byte{0x00, 0x01, 0x05, 'e', 'v', 'i', 'l', '\n'}
	fw.Write(raw)
	fw.Close()
	rawDB, err := sql.Open("sqlite3", db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer rawDB.Close()
	for _, s := range []string{`DROP TRIGGER output_append_only_update`} {
		if _, err := rawDB.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rawDB.Exec(`UPDATE output_chunks SET frames = ?, raw_len = ?`, z.Bytes(), len(raw)); err != nil {
		t.Fatal(err)
	}
	res, err := db.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) != 1 || res.Problems[0].Kind != "output changed" || res.Problems[0].Seq != 4 {
		t.Fatalf("problems = %+v, want one 'output changed' at seq 4", res.Problems)
	}
	if !strings.Contains(res.Problems[0].Detail, "command_end") {
		t.Fatalf("detail %q", res.Problems[0].Detail)
	}
}
