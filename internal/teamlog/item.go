package teamlog

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tfsh/tfsh/audit"
)

// Attribute and index names of the table (docs/audit.md "The shared
// table").
const (
	attrPK        = "pk"
	attrSK        = "sk"
	attrDay       = "day"
	attrAtID      = "at_id"
	attrStateKey  = "state_key"
	attrSessionID = "session_id"
	attrExpires   = "expires"

	IndexByDay     = "by_day"
	IndexByState   = "by_state"
	IndexBySession = "by_session"
)

// maxItemBytes keeps items well under DynamoDB's 400 KB.
const maxItemBytes = 350 << 10

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

func eventPK(logID string) string { return "ev#" + logID }
func seqSK(seq int64) string      { return fmt.Sprintf("%020d", seq) }
func outPK(commandID string) string {
	return "out#" + commandID
}
func day(t time.Time) string { return t.UTC().Format("2006-01-02") }
func atID(t time.Time, id string) string {
	return fmt.Sprintf("%020d#%s", t.UnixNano(), id)
}

// eventItem is e, one of log logID's own events, as an item.
func eventItem(logID string, e *audit.Event, expires int64) (map[string]types.AttributeValue, error) {
	it := map[string]types.AttributeValue{
		attrPK: s(eventPK(logID)), attrSK: s(seqSK(e.Seq)),
		"type": s("ev"), "origin": s(logID), "seq": n(e.Seq),
		"id": s(e.ID), "at": n(e.At.UnixNano()), attrSessionID: s(e.SessionID), "kind": s(e.Kind),
		"data": s(string(e.Data)), "prev_hash": s(e.PrevHash), "hash": s(e.Hash),
		attrDay: s(day(e.At)), attrAtID: s(atID(e.At, e.ID)),
	}
	for k, v := range map[string]string{"command_id": e.CommandID, attrStateKey: e.StateKey, "lock_id": e.LockID} {
		if v != "" {
			it[k] = s(v)
		}
	}
	binaryIfNotUTF8(it)
	if expires > 0 {
		it[attrExpires] = n(expires)
	}
	if size := len(e.Data) + len(e.StateKey) + 512; size > maxItemBytes {
		return nil, fmt.Errorf("event %d (%s, %s) is %d bytes, more than a DynamoDB item can safely hold (%d): it cannot be shipped", e.Seq, e.Kind, e.ID, size, maxItemBytes)
	}
	return it, nil
}

// binaryIfNotUTF8 moves string attributes that are not UTF-8 to binary
// ones named NAME_b. A string attribute must be UTF-8, and the hash covers
// the exact bytes: a column that is not (a state path, bytes a redaction
// cut) goes as it is, and is then in no index.
func binaryIfNotUTF8(it map[string]types.AttributeValue) {
	for k, v := range it {
		if sv, ok := v.(*types.AttributeValueMemberS); ok && !utf8.ValidString(sv.Value) {
			delete(it, k)
			it[k+"_b"] = &types.AttributeValueMemberB{Value: []byte(sv.Value)}
		}
	}
}

// chunkItem is one output chunk of the command end ended, as an item: it
// carries the command_end's day, time, session and state, so the queries
// that find the command find its output.
func chunkItem(logID string, end *audit.Event, c *audit.OutputChunk, expires int64) map[string]types.AttributeValue {
	it := map[string]types.AttributeValue{
		attrPK: s(outPK(c.CommandID)), attrSK: s(fmt.Sprintf("%08d", c.Seq)),
		"type": s("out"), "origin": s(logID), "command_id": s(c.CommandID), "seq": n(int64(c.Seq)),
		"start_ns": n(c.StartNS), "raw_len": n(int64(c.RawLen)), "frames": &types.AttributeValueMemberB{Value: c.Frames},
		attrSessionID: s(end.SessionID),
		attrDay:       s(day(end.At)), attrAtID: s(fmt.Sprintf("%s#%08d", atID(end.At, end.ID), c.Seq)),
	}
	if end.StateKey != "" {
		it[attrStateKey] = s(end.StateKey)
	}
	binaryIfNotUTF8(it)
	if expires > 0 {
		it[attrExpires] = n(expires)
	}
	return it
}

// itemError names an item that is not what tfsh writes.
type itemError struct {
	pk, sk, why string
}

func (e *itemError) Error() string {
	return fmt.Sprintf("item %s/%s is not a tfsh audit item: %s", e.pk, e.sk, e.why)
}

type reader struct {
	it  map[string]types.AttributeValue
	err *itemError
}

func (r *reader) str(k string, required bool) string {
	v, ok := r.it[k].(*types.AttributeValueMemberS)
	if b, isB := r.it[k+"_b"].(*types.AttributeValueMemberB); !ok && isB {
		return string(b.Value)
	}
	if !ok {
		if required && r.err.why == "" {
			r.err.why = "no string " + k
		}
		return ""
	}
	return v.Value
}

func (r *reader) num(k string) int64 {
	v, ok := r.it[k].(*types.AttributeValueMemberN)
	var x int64
	var err error
	if ok {
		x, err = strconv.ParseInt(v.Value, 10, 64)
	}
	if (!ok || err != nil) && r.err.why == "" {
		r.err.why = "no integer " + k
	}
	return x
}

// decoded is one item read back: an event of a log, or an output chunk.
type decoded struct {
	origin  string
	session string
	event   *audit.Event
	chunk   *audit.OutputChunk
}

// key names the item once, whichever query found it.
func (d *decoded) key() string {
	if d.event != nil {
		return fmt.Sprintf("e\x00%s\x00%d", d.origin, d.event.OriginSeq)
	}
	return fmt.Sprintf("c\x00%s\x00%d", d.chunk.CommandID, d.chunk.Seq)
}

func decodeItem(it map[string]types.AttributeValue) (decoded, error) {
	r := &reader{it: it, err: &itemError{}}
	r.err.pk, r.err.sk = r.str(attrPK, false), r.str(attrSK, false)
	d := decoded{origin: r.str("origin", true), session: r.str(attrSessionID, false)}
	switch typ := r.str("type", true); typ {
	case "ev":
		e := &audit.Event{
			ID: r.str("id", true), At: time.Unix(0, r.num("at")).UTC(), SessionID: r.str(attrSessionID, true),
			CommandID: r.str("command_id", false), Kind: r.str("kind", true), StateKey: r.str(attrStateKey, false),
			LockID: r.str("lock_id", false), Data: json.RawMessage(r.str("data", true)),
			PrevHash: r.str("prev_hash", true), Hash: r.str("hash", true), OriginSeq: r.num("seq"),
		}
		if r.err.why == "" && r.err.pk != eventPK(d.origin) {
			r.err.why = "its key does not name its origin " + d.origin
		}
		d.event = e
	case "out":
		c := &audit.OutputChunk{CommandID: r.str("command_id", true), Seq: int(r.num("seq")), StartNS: r.num("start_ns"), RawLen: int(r.num("raw_len"))}
		if b, ok := it["frames"].(*types.AttributeValueMemberB); ok {
			c.Frames = b.Value
		} else if r.err.why == "" {
			r.err.why = "no binary frames"
		}
		d.chunk = c
	default:
		if r.err.why == "" {
			r.err.why = fmt.Sprintf("type %q", typ)
		}
	}
	if r.err.why != "" {
		return d, r.err
	}
	if strings.TrimSpace(d.origin) == "" {
		return d, &itemError{r.err.pk, r.err.sk, "empty origin"}
	}
	return d, nil
}
