package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
)

// Kinds of problem Verify reports.
const (
	ProblemEdited       = "edited"            // a row's content no longer matches its hash
	ProblemDeleted      = "deleted"           // rows are missing (a gap in seq, or a row follows one that is gone)
	ProblemInserted     = "inserted"          // rows were added between two events
	ProblemReordered    = "reordered"         // a row follows an event other than the one before it
	ProblemTruncated    = "truncated"         // the newest events are gone (found through anchors)
	ProblemRewritten    = "rewritten"         // an anchored event's hash differs (the chain was recomputed)
	ProblemOutput       = "output changed"    // a command's output no longer matches its digest
	ProblemOutputBroken = "output unreadable" // a command's output cannot be read back
	ProblemAnchor       = "anchor"            // an anchor is unsigned, badly signed or unreadable
)

// maxProblems bounds the list Verify keeps: a renumbering can make every
// later row a problem, and the first ones say what happened.
const maxProblems = 1000

// Problem is one place where the log is not what was written.
type Problem struct {
	Seq       int64  `json:"seq"`
	Kind      string `json:"kind"` // one of the Problem* constants
	CommandID string `json:"command_id,omitempty"`
	// Origin is the log_id of the log that wrote the event, for a pulled
	// one; Seq is then still its seq here.
	Origin string `json:"origin,omitempty"`
	Detail string `json:"detail"`
}

// VerifyResult summarises a full check of the chain and of every output
// digest.
type VerifyResult struct {
	Events   int64  `json:"events"`
	Head     string `json:"head"`
	HeadSeq  int64  `json:"head_seq"`
	Commands int    `json:"commands_checked"`
	// Anchors is how many anchors were checked (VerifyAnchors).
	Anchors int `json:"anchors_checked"`
	// First is the first broken place in the log (lowest seq), nil when
	// the log is intact.
	First    *Problem  `json:"first_problem,omitempty"`
	Problems []Problem `json:"problems"`
	// More counts the problems found beyond the listed ones.
	More int `json:"more_problems,omitempty"`
	// LogID is this log's own ID; Origins are the other logs whose
	// events were pulled into it, each chain checked on its own.
	LogID   string         `json:"log_id"`
	Origins []OriginResult `json:"origins"`
}

// OK reports whether nothing was found.
func (r *VerifyResult) OK() bool { return len(r.Problems) == 0 }

func (r *VerifyResult) add(p Problem) {
	if len(r.Problems) >= maxProblems {
		r.More++
		return
	}
	r.Problems = append(r.Problems, p)
}

// finish orders the problems by place and names the first.
func (r *VerifyResult) finish() {
	sort.SliceStable(r.Problems, func(i, j int) bool { return r.Problems[i].Seq < r.Problems[j].Seq })
	r.First = nil
	if len(r.Problems) > 0 {
		r.First = &r.Problems[0]
	}
}

// link is a row whose prev_hash is not its predecessor's hash, classified
// once the whole log has been read.
type link struct {
	seq      int64
	prevHash string
	at       int // index of its placeholder problem
}

// Verify recomputes the hash chain from the first event and the digest of
// every command's recorded output. It reads the log once, streaming.
//
// A row whose content no longer matches its hash is "edited"; a gap in the
// sequence, or a row that follows an event no longer in the log, is
// "deleted"; a row that follows an event which another row already
// follows, the rows between them being a chain of their own, marks those
// rows "inserted"; a row that follows some other event than the one before
// it is "reordered". Renumbering rows to hide an insertion or deletion
// changes their seq, so each is also "edited". Deleting the newest events,
// or rewriting the whole chain consistently, is not caught here: that is
// what anchors outside the database are for (VerifyAnchors).
func (d *DB) Verify(ctx context.Context) (*VerifyResult, error) {
	return d.VerifyWith(ctx, VerifyOptions{})
}

// VerifyOptions adds checks against anchors to Verify.
type VerifyOptions struct {
	// Anchors, if set, are checked against the log: every anchored event
	// must be in the log with the anchored hash ("rewritten" if not: the
	// chain was recomputed), and the log must reach the newest anchor
	// ("truncated").
	Anchors AnchorSource
	// PublicKey, if set, must have signed every anchor.
	PublicKey ed25519.PublicKey
}

// VerifyWith is Verify, plus the checks opt asks for.
func (d *DB) VerifyWith(ctx context.Context, opt VerifyOptions) (*VerifyResult, error) {
	res := &VerifyResult{Head: GenesisHash, Problems: []Problem{}}
	var anchors []Anchor
	if opt.Anchors != nil {
		var err error
		if anchors, err = opt.Anchors.ReadAnchors(ctx); err != nil {
			return nil, err
		}
	}
	// The hashes the log holds at anchored places, collected by the chain
	// pass and compared with the anchors after it, once their signatures
	// (checked beside the pass, on every core) are known.
	anchored := make(map[int64]string, len(anchors))
	for _, a := range anchors {
		anchored[a.Seq] = ""
	}
	signed := checkSignatures(anchors, opt.PublicKey)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type ended = commandEnded
	outputs := make(chan outputDigests, 1)
	go func() { outputs <- d.outputDigests(ctx) }() // beside the chain: two cores

	prevSeq := int64(0)
	var ends []ended
	var links []link
	commandEnd := []byte(KindCommandEnd)
	// Every row, in seq order: seq has no gaps, whoever wrote the row
	// (pulled rows take the next seq too). This log's own rows chain
	// among themselves; pulled rows are checked per origin afterwards.
	rows, err := d.db.QueryContext(ctx, `SELECT seq, id, at, session_id, COALESCE(command_id, ''), kind, COALESCE(state_key, ''), COALESCE(lock_id, ''), data, prev_hash, hash, origin IS NOT NULL FROM events ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("read audit events: %w", err)
	}
	defer rows.Close()
	// Columns are read as sql.RawBytes, valid until the next row, and
	// hashed in place: no copies for a row that is as it was written.
	var (
		seq, at                                                int64
		id, sessionID, commandID, kind, stateKey, lockID, data sql.RawBytes
		prevHash, hash                                         sql.RawBytes
		foreign, gap                                           bool
		buf                                                    []byte
		sum                                                    [sha256.Size]byte
		hexSum                                                 [2 * sha256.Size]byte
	)
	head := []byte(GenesisHash)
	h := sha256.New()
	for rows.Next() {
		if err := rows.Scan(&seq, &id, &at, &sessionID, &commandID, &kind, &stateKey, &lockID, &data, &prevHash, &hash, &foreign); err != nil {
			return nil, fmt.Errorf("read audit event: %w", err)
		}
		res.Events++
		if seq != prevSeq+1 {
			res.add(Problem{Seq: seq, Kind: ProblemDeleted,
				Detail: fmt.Sprintf("events %d..%d are missing", prevSeq+1, seq-1)})
			gap = true // the next own row's link is explained by it
		}
		prevSeq = seq
		if foreign {
			continue
		}
		if gap {
			gap = false
		} else if !bytes.Equal(prevHash, head) {
			links = append(links, link{seq: seq, prevHash: string(prevHash), at: len(res.Problems)})
			res.add(Problem{Seq: seq, Kind: ProblemReordered})
		}
		buf = appendCanonical(buf[:0], seq, id, at, sessionID, commandID, kind, stateKey, lockID, data)
		h.Reset()
		h.Write(prevHash)
		h.Write(buf)
		hex.Encode(hexSum[:], h.Sum(sum[:0]))
		if !bytes.Equal(hexSum[:], hash) {
			res.add(Problem{Seq: seq, Kind: ProblemEdited, CommandID: string(commandID),
				Detail: fmt.Sprintf("%s event content does not match its hash", kind)})
		}
		if bytes.Equal(kind, commandEnd) {
			if digest := outputSHA256(data); digest != "" {
				ends = append(ends, ended{seq: seq, id: string(commandID), digest: digest})
			}
		}
		if _, ok := anchored[seq]; ok {
			anchored[seq] = string(hash)
		}
		head = append(head[:0], hash...)
		res.HeadSeq = seq
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit events: %w", err)
	}
	rows.Close()
	if err := d.verifyOrigins(ctx, res, &ends); err != nil {
		return nil, err
	}
	res.Head = string(head)
	checkAnchors(res, anchors, <-signed, anchored)
	for _, l := range links {
		if l.at >= len(res.Problems) {
			continue // beyond the listed problems
		}
		p, err := d.classifyLink(ctx, l)
		if err != nil {
			return nil, err
		}
		res.Problems[l.at] = p
	}
	out := <-outputs
	if out.err != nil {
		return nil, out.err
	}
	for _, c := range ends {
		res.Commands++
		sum, ok := out.sums[c.id]
		if !ok {
			sum = sha256.Sum256(nil) // no output
		}
		got := hex.EncodeToString(sum[:])
		switch err := out.errs[c.id]; {
		case err != nil:
			res.add(Problem{Seq: c.seq, Kind: ProblemOutputBroken, CommandID: c.id, Origin: c.origin, Detail: err.Error()})
		case got != c.digest:
			res.add(Problem{Seq: c.seq, Kind: ProblemOutput, CommandID: c.id, Origin: c.origin,
				Detail: fmt.Sprintf("recorded output hashes to %.12s…, command_end says %.12s…", got, c.digest)})
		}
	}
	res.finish()
	return res, nil
}

// classifyLink says why row l.seq does not follow the row before it, from
// the row its prev_hash names.
func (d *DB) classifyLink(ctx context.Context, l link) (Problem, error) {
	var named int64
	err := d.db.QueryRowContext(ctx, `SELECT seq FROM events WHERE hash = ?`, l.prevHash).Scan(&named)
	switch {
	case err == sql.ErrNoRows:
		return Problem{Seq: l.seq, Kind: ProblemDeleted,
			Detail: fmt.Sprintf("event %d follows an event (hash %.12s…) that is no longer in the log", l.seq, l.prevHash)}, nil
	case err != nil:
		return Problem{}, fmt.Errorf("read audit events: %w", err)
	case named >= l.seq:
		return Problem{Seq: l.seq, Kind: ProblemReordered,
			Detail: fmt.Sprintf("event %d follows event %d, which comes after it", l.seq, named)}, nil
	}
	// The row names an earlier event. If the rows between that event and
	// this one chain from it, they were put in between: inserted.
	prev := l.prevHash
	chained := true
	err = d.eachBetween(ctx, named, l.seq, func(prevHash, hash string) {
		if prevHash != prev {
			chained = false
		}
		prev = hash
	})
	if err != nil {
		return Problem{}, err
	}
	if chained {
		n := l.seq - named - 1
		return Problem{Seq: named + 1, Kind: ProblemInserted,
			Detail: fmt.Sprintf("%d event(s) %d..%d were put between events %d and %d (originally consecutive)", n, named+1, l.seq-1, named, l.seq)}, nil
	}
	return Problem{Seq: l.seq, Kind: ProblemReordered,
		Detail: fmt.Sprintf("event %d follows event %d, not event %d", l.seq, named, l.seq-1)}, nil
}

// eachBetween calls fn with prev_hash and hash of the rows strictly between
// seqs from and to.
func (d *DB) eachBetween(ctx context.Context, from, to int64, fn func(prevHash, hash string)) error {
	rows, err := d.db.QueryContext(ctx, `SELECT prev_hash, hash FROM events WHERE seq > ? AND seq < ? AND origin IS NULL ORDER BY seq`, from, to)
	if err != nil {
		return fmt.Errorf("read audit events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p, h string
		if err := rows.Scan(&p, &h); err != nil {
			return fmt.Errorf("read audit events: %w", err)
		}
		fn(p, h)
	}
	return rows.Err()
}

// outputDigests is the SHA-256 of every command's recorded output, or why
// it could not be read.
type outputDigests struct {
	sums map[string][sha256.Size]byte
	errs map[string]error
	err  error
}

// outputDigests reads all output once, in key order, and hashes each
// command's chunks as OutputDigest does.
func (d *DB) outputDigests(ctx context.Context) outputDigests {
	res := outputDigests{sums: map[string][sha256.Size]byte{}, errs: map[string]error{}}
	rows, err := d.db.QueryContext(ctx, `SELECT command_id, seq, raw_len, frames FROM output_chunks ORDER BY command_id, seq`)
	if err != nil {
		res.err = fmt.Errorf("read output: %w", err)
		return res
	}
	defer rows.Close()
	var (
		in     inflater
		cur    string
		bad    bool
		id, z  sql.RawBytes
		seq, n int
		h      = sha256.New()
		sum    [sha256.Size]byte
	)
	flush := func() {
		if cur != "" && !bad {
			res.sums[cur] = [sha256.Size]byte(h.Sum(sum[:0]))
		}
	}
	for rows.Next() {
		if err := rows.Scan(&id, &seq, &n, &z); err != nil {
			res.err = fmt.Errorf("read output: %w", err)
			return res
		}
		if string(id) != cur {
			flush()
			cur, bad = string(id), false
			h.Reset()
		}
		if bad {
			continue
		}
		raw, err := in.chunk(cur, seq, n, z)
		if err != nil {
			res.errs[cur], bad = err, true
			continue
		}
		h.Write(raw)
	}
	if err := rows.Err(); err != nil {
		res.err = fmt.Errorf("read output: %w", err)
		return res
	}
	flush()
	return res
}

var outputSHA256Key = []byte(`"output_sha256":"`)

// outputSHA256 is command_end's output_sha256. The data is as
// json.Marshal wrote it, so the key is found as written, without decoding
// the whole object; anything else is decoded.
func outputSHA256(data []byte) string {
	if i := bytes.Index(data, outputSHA256Key); i >= 0 {
		v := data[i+len(outputSHA256Key):]
		if len(v) > 2*sha256.Size && v[2*sha256.Size] == '"' {
			return string(v[:2*sha256.Size])
		}
	}
	var end struct {
		OutputSHA256 string `json:"output_sha256"`
	}
	if json.Unmarshal(data, &end) != nil {
		return ""
	}
	return end.OutputSHA256
}
