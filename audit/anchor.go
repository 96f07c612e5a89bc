package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Anchor is the chain head as it was when a session ended, kept outside the
// database: a log rewritten with its chain recomputed, or cut short, no
// longer agrees with its anchors.
type Anchor struct {
	Seq     int64     `json:"seq"`
	Hash    string    `json:"hash"`
	At      time.Time `json:"at"`
	Session string    `json:"session"`
	// Sig is the base64 ed25519 signature of the anchor's JSON line
	// without sig (SignedBytes), when a key was given.
	Sig string `json:"sig,omitempty"`
}

// SignedBytes is what an anchor's signature covers: its compact JSON
// encoding without sig, as written.
func (a Anchor) SignedBytes() []byte {
	a.Sig = ""
	a.At = a.At.UTC()
	b, _ := json.Marshal(a)
	return b
}

// AnchorSink keeps anchors somewhere the database's writer cannot rewrite
// them: a file beside it (FileAnchors), or a bucket or table that refuses
// to overwrite (see internal/anchor).
type AnchorSink interface {
	WriteAnchor(ctx context.Context, a Anchor) error
}

// AnchorSource gives back the anchors a sink kept.
type AnchorSource interface {
	ReadAnchors(ctx context.Context) ([]Anchor, error)
}

// FileAnchors is the default sink: one JSON line per anchor, appended to
// a 0600 file beside the log (AUDIT_DB.anchors).
type FileAnchors struct{ Path string }

// AnchorPath is where the default sink keeps the anchors of the log at
// dbPath.
func AnchorPath(dbPath string) string { return dbPath + ".anchors" }

// WriteAnchor appends one line. It does not fsync it: an anchor must never
// be more durable than the events it anchors. The log syncs its events at
// checkpoints (synchronous=NORMAL), so after a power loss an anchor synced
// at once could name events the log lost with the machine, and verify would
// call the log truncated. An anchor lost with the page cache costs only the
// evidence for that last session. (The sync was also 0.3-0.6 ms of every
// tfsh run's exit.)
func (f FileAnchors) WriteAnchor(ctx context.Context, a Anchor) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode anchor: %w", err)
	}
	file, err := os.OpenFile(f.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("write anchor: %w", err)
	}
	if _, err := file.Write(append(b, '\n')); err != nil {
		file.Close()
		return fmt.Errorf("write anchor to %s: %w", f.Path, err)
	}
	return file.Close()
}

// ReadAnchors reads every line; a missing file has none. A line that is
// not an anchor is an error naming it.
func (f FileAnchors) ReadAnchors(ctx context.Context) ([]Anchor, error) {
	file, err := os.Open(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read anchors: %w", err)
	}
	defer file.Close()
	var out []Anchor
	sc := bufio.NewScanner(file)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var a Anchor
		if err := json.Unmarshal(line, &a); err != nil || a.Seq <= 0 || a.Hash == "" {
			return nil, fmt.Errorf("read anchors: %s:%d is not an anchor", f.Path, n)
		}
		out = append(out, a)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read anchors %s: %w", f.Path, err)
	}
	return out, nil
}

// ParseAnchorKey reads an ed25519 signing key given as base64 (standard
// encoding): a 32-byte seed or a 64-byte private key (seed then public
// key, as Go's crypto/ed25519 and `openssl pkey -outform DER | tail -c 32`
// give the seed).
func ParseAnchorKey(s string) (ed25519.PrivateKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("anchor key: not base64: %w", err)
	}
	switch len(b) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(b), nil
	case ed25519.PrivateKeySize:
		k := ed25519.PrivateKey(b)
		if !bytes.Equal(ed25519.NewKeyFromSeed(b[:32]).Public().(ed25519.PublicKey), b[32:]) {
			return nil, errors.New("anchor key: the 64-byte key's public half does not match its seed")
		}
		return k, nil
	}
	return nil, fmt.Errorf("anchor key: %d bytes, want a 32-byte seed or a 64-byte private key", len(b))
}

// ParseAnchorPublicKey reads an ed25519 public key given as base64 (32
// bytes).
func ParseAnchorPublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("anchor public key: not base64: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("anchor public key: %d bytes, want 32", len(b))
	}
	return ed25519.PublicKey(b), nil
}

// anchor writes the anchor for event (seq, hash) to every sink. Failing
// to is reported through OnAnchorError and never undoes what the log
// holds.
func (d *DB) anchor(ctx context.Context, seq int64, hash, session string) {
	if len(d.Anchors) == 0 {
		return
	}
	a := Anchor{Seq: seq, Hash: hash, At: d.Now().UTC(), Session: session}
	if d.AnchorKey != nil {
		a.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(d.AnchorKey, a.SignedBytes()))
	}
	for _, s := range d.Anchors {
		if err := s.WriteAnchor(ctx, a); err != nil && d.OnAnchorError != nil {
			d.OnAnchorError(err)
		}
	}
}

// anchorHead anchors the newest event (after sessions closed as crashed).
func (d *DB) anchorHead(ctx context.Context, session string) {
	if len(d.Anchors) == 0 {
		return
	}
	var seq int64
	var hash string
	err := d.db.QueryRowContext(ctx, `SELECT seq, hash FROM events WHERE origin IS NULL ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if err != nil {
		if err != sql.ErrNoRows && d.OnAnchorError != nil {
			d.OnAnchorError(fmt.Errorf("read audit chain head: %w", err))
		}
		return
	}
	d.anchor(ctx, seq, hash, session)
}

// checkSignatures checks the anchors' signatures against pub on every core
// and sends which are good (all, without a key); it returns at once.
func checkSignatures(anchors []Anchor, pub ed25519.PublicKey) <-chan []string {
	out := make(chan []string, 1)
	bad := make([]string, len(anchors)) // why anchor i is not to be trusted; "" if it is
	if pub == nil {
		out <- bad
		return out
	}
	go func() {
		workers := min(runtime.GOMAXPROCS(0), max(1, len(anchors)/256))
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(anchors); i += workers {
					a := &anchors[i]
					sig, err := base64.StdEncoding.DecodeString(a.Sig)
					switch {
					case a.Sig == "":
						bad[i] = "is not signed"
					case err != nil || !ed25519.Verify(pub, a.SignedBytes(), sig):
						bad[i] = "has a bad signature"
					}
				}
			}()
		}
		wg.Wait()
		out <- bad
	}()
	return out
}

// checkAnchors adds to res what the anchors say about the log: hashes
// holds the log's hash at each anchored place ("" where the log has no such
// event), bad why an anchor is not trusted (its index's entry).
func checkAnchors(res *VerifyResult, anchors []Anchor, bad []string, hashes map[int64]string) {
	missing := map[int64]bool{} // reported once, however many stores anchored it
	for i, a := range anchors {
		res.Anchors++
		if bad[i] != "" {
			res.add(Problem{Seq: a.Seq, Kind: ProblemAnchor, Detail: fmt.Sprintf("the anchor of event %d written at %s %s", a.Seq, a.At.Format(time.RFC3339), bad[i])})
			continue
		}
		switch hash := hashes[a.Seq]; {
		case hash == "" && missing[a.Seq]:
		case hash == "" && a.Seq > res.HeadSeq:
			missing[a.Seq] = true
			res.add(Problem{Seq: a.Seq, Kind: ProblemTruncated,
				Detail: fmt.Sprintf("the log ends at event %d, but event %d was anchored at %s", res.HeadSeq, a.Seq, a.At.Format(time.RFC3339))})
		case hash == "":
			missing[a.Seq] = true
			res.add(Problem{Seq: a.Seq, Kind: ProblemDeleted,
				Detail: fmt.Sprintf("anchored event %d is not in the log", a.Seq)})
		case hash != a.Hash:
			res.add(Problem{Seq: a.Seq, Kind: ProblemRewritten,
				Detail: fmt.Sprintf("event %d hashes to %.12s…, its anchor written at %s says %.12s…: the log was rewritten", a.Seq, hash, a.At.Format(time.RFC3339), a.Hash)})
		}
	}
}
