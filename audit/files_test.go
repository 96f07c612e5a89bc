package audit_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tfsh/tfsh/audit"
)

// TestFileModesWhateverTheUmask: the log, its -wal and -shm are 0600 (0660
// shared through a group), its directory 0700 (0770), under any umask.
func TestFileModesWhateverTheUmask(t *testing.T) {
	for _, c := range []struct {
		shared        string
		file, dirPerm os.FileMode
	}{{"", 0o600, 0o700}, {"group", 0o660, 0o770}} {
		for _, umask := range []int{0, 0o022, 0o077} {
			t.Run(fmt.Sprintf("shared=%s/umask=%03o", c.shared, umask), func(t *testing.T) {
				t.Setenv("TFSH_AUDIT_SHARED", c.shared)
				old := syscallUmask(umask)
				defer syscallUmask(old)
				path := filepath.Join(t.TempDir(), "state", "audit.db")
				db, err := audit.Open(context.Background(), path)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				record(t, db, nil, "hello\n")
				for _, suffix := range []string{"", "-wal", "-shm"} {
					fi, err := os.Stat(path + suffix)
					if err != nil {
						t.Fatalf("stat %s: %v", suffix, err)
					}
					// umask 077 may leave a shared log's directory
					// narrower; files are set whatever it says.
					if got := fi.Mode().Perm(); got != c.file {
						t.Fatalf("mode of audit.db%s = %v, want %v", suffix, got, c.file)
					}
				}
				fi, err := os.Stat(filepath.Dir(path))
				if err != nil {
					t.Fatal(err)
				}
				if got := fi.Mode().Perm(); got&^c.dirPerm != 0 {
					t.Fatalf("mode of the directory = %v, want at most %v", got, c.dirPerm)
				}
			})
		}
	}
}

// TestWideFilesAreTightened: a log, -wal or -shm left world-readable is
// made private again on open.
func TestWideFilesAreTightened(t *testing.T) {
	db := MustOpenDB(t)
	record(t, db, nil, "hello\n")
	path := db.Path()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Chmod(path+suffix, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	db2, err := audit.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		fi, _ := os.Stat(path + suffix)
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Fatalf("mode of audit.db%s = %v after open, want 0600", suffix, got)
		}
	}
}

// TestAnotherUsersLogIsRefused: a log owned by another user is refused
// unless shared through a group of ours (TFSH_AUDIT_SHARED=group). It
// needs root to give the file away.
func TestAnotherUsersLogIsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown a log to another user")
	}
	const nobody = 65534
	ctx := context.Background()
	db := MustOpenDB(t)
	record(t, db, nil, "hello\n")
	path := db.Path()
	db.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Chown(path+suffix, nobody, nobody); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	var foreign *audit.ForeignOwnerError
	_, err := audit.Open(ctx, path)
	if !errors.As(err, &foreign) || foreign.UID != nobody || !strings.Contains(err.Error(), "TFSH_AUDIT_SHARED=group") {
		t.Fatalf("open of another user's log: %v, want a refusal naming TFSH_AUDIT_SHARED=group", err)
	}
	// Shared, but through a group that is not ours: still refused.
	t.Setenv("TFSH_AUDIT_SHARED", "group")
	if _, err := audit.Open(ctx, path); !errors.As(err, &foreign) {
		t.Fatalf("open of a log shared through another group: %v, want a refusal", err)
	}
	// Shared through our group: used, and the chain goes on.
	if err := os.Chown(path, nobody, os.Getegid()); err != nil {
		t.Fatal(err)
	}
	db2, err := audit.Open(ctx, path)
	if err != nil {
		t.Fatalf("open of a log shared through our group: %v", err)
	}
	defer db2.Close()
	record(t, db2, nil, "again\n")
	if res, err := db2.Verify(ctx); err != nil || !res.OK() || res.Commands != 2 {
		t.Fatalf("verify = %+v, %v", res, err)
	}
	// An unknown sharing mode is an error, not a guess.
	t.Setenv("TFSH_AUDIT_SHARED", "world")
	if _, err := audit.Open(ctx, path); err == nil || !strings.Contains(err.Error(), `"group"`) {
		t.Fatalf("TFSH_AUDIT_SHARED=world: %v", err)
	}
}
