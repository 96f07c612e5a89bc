package audit

import (
	"context"
	"encoding/json"
	"fmt"
)

// Problem is one place where the log is not what was written.
type Problem struct {
	Seq       int64  `json:"seq"`
	Kind      string `json:"kind"` // edited, deleted, inserted or reordered, output changed, output unreadable
	CommandID string `json:"command_id,omitempty"`
	Detail    string `json:"detail"`
}

// VerifyResult summarises a full check of the chain and of every output
// digest.
type VerifyResult struct {
	Events   int64     `json:"events"`
	Head     string    `json:"head"`
	Commands int       `json:"commands_checked"`
	Problems []Problem `json:"problems"`
}

// OK reports whether nothing was found.
func (r *VerifyResult) OK() bool { return len(r.Problems) == 0 }

// Verify recomputes the hash chain from the first event and the digest of
// every command's recorded output. It reads the log once, streaming.
//
// A row whose content no longer matches its hash is "edited"; a gap in the
// sequence is "deleted"; a row whose prev_hash is not its predecessor's hash
// is "inserted or reordered". Rewriting the whole chain consistently is not
// caught here: that is what anchors outside the database are for.
func (d *DB) Verify(ctx context.Context) (*VerifyResult, error) {
	res := &VerifyResult{Head: GenesisHash}
	prevSeq := int64(0)
	type ended struct {
		seq    int64
		id     string
		digest string
	}
	var ends []ended
	err := d.Events(ctx, EventFilter{}, func(e Event) error {
		res.Events++
		if e.Seq != prevSeq+1 {
			res.Problems = append(res.Problems, Problem{Seq: e.Seq, Kind: "deleted",
				Detail: fmt.Sprintf("events %d..%d are missing", prevSeq+1, e.Seq-1)})
		} else if e.PrevHash != res.Head {
			res.Problems = append(res.Problems, Problem{Seq: e.Seq, Kind: "inserted or reordered",
				Detail: fmt.Sprintf("prev_hash %.12s… does not match event %d's hash %.12s…", e.PrevHash, prevSeq, res.Head)})
		}
		if want := rowHash(e.PrevHash, &e); want != e.Hash {
			res.Problems = append(res.Problems, Problem{Seq: e.Seq, Kind: "edited", CommandID: e.CommandID,
				Detail: fmt.Sprintf("%s event content does not match its hash", e.Kind)})
		}
		if e.Kind == KindCommandEnd {
			var end CommandEnd
			if json.Unmarshal(e.Data, &end) == nil && end.OutputSHA256 != "" {
				ends = append(ends, ended{seq: e.Seq, id: e.CommandID, digest: end.OutputSHA256})
			}
		}
		prevSeq = e.Seq
		res.Head = e.Hash
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, c := range ends {
		res.Commands++
		got, _, _, err := d.OutputDigest(ctx, c.id)
		switch {
		case err != nil:
			res.Problems = append(res.Problems, Problem{Seq: c.seq, Kind: "output unreadable", CommandID: c.id, Detail: err.Error()})
		case got != c.digest:
			res.Problems = append(res.Problems, Problem{Seq: c.seq, Kind: "output changed", CommandID: c.id,
				Detail: fmt.Sprintf("recorded output hashes to %.12s…, command_end says %.12s…", got, c.digest)})
		}
	}
	return res, nil
}
