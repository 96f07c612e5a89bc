package audit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tfsh/tfsh/audit"
	"github.com/tfsh/tfsh/audit/audittest"
)

// replayed is one item as a test compares it: kind, offset in ms, command
// number, and the event kind or the stream and text.
func replayed(it audit.ReplayItem) string {
	n := 0
	if it.Command != nil {
		n = it.Command.N
	}
	what := ""
	switch it.Kind {
	case audit.ReplaySession:
		what = it.Session.ID
	case audit.ReplayCommand:
		what = it.Command.Info.Line
	case audit.ReplayOutput:
		what = fmt.Sprintf("%s %q", it.Frame.Stream, it.Frame.Data)
	case audit.ReplayEvent:
		what = it.Event.Kind
	}
	return fmt.Sprintf("%s +%d c%d %s", it.Kind, it.Offset.Milliseconds(), n, what)
}

func collectReplay(t *testing.T, db *audit.DB, target audit.ReplayTarget) ([]string, []audit.ReplayItem) {
	t.Helper()
	var got []string
	var items []audit.ReplayItem
	err := db.Replay(context.Background(), target, func(it audit.ReplayItem) error {
		got = append(got, replayed(it))
		it.Frame.Data = nil
		items = append(items, it)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, items
}

func TestReplayMergesOutputAndEventsInTimeOrder(t *testing.T) {
	db := MustOpenDB(t)
	fx := audittest.RecordSession(t, db)
	got, items := collectReplay(t, db, audit.ReplayTarget{SessionID: fx.SessionID})
	want := []string{
		"session +0 c0 " + fx.SessionID,
		"command +1000 c1 apply -auto-approve",
		"event +1000 c1 policy_decision",
		`output +1001 c1 tfsh "tfsh: added -lock-timeout=5m (built-in)\n"`,
		`output +1100 c1 tty "Acquiring state lock. This may take a few moments...\r\n"`,
		"event +1150 c1 lock_acquired",
		`output +1400 c1 tty "terraform_data.pause: Creating...\r\n"`,
		`output +2000 c1 tty "\x1b[1m\x1b[32mApply complete! Resources: 1 added, 0 changed, 0 destroyed.\x1b[0m\r\n"`,
		`output +2100 c1 tty "caf\xc3"`,
		`output +2200 c1 tty "\xa9 ✓\r\n"`,
		`output +2300 c1 tty "Releasing state lock. This may take a few moments..."`,
		"event +2400 c1 lock_released",
		"event +2500 c1 command_end",
		"command +4000 c2 plan",
		"event +4000 c2 policy_decision",
		`output +4001 c2 tfsh "tfsh: warning from rule \"evening-plans\" (.tfsh/policy.hcl:3): plans after 18:00 are reviewed\n"`,
		`output +4200 c2 stdout "Acquiring state lock. This may take a few moments...\n"`,
		"event +4300 c2 lock_wait",
		`output +10250 c2 stderr "\nError: Error acquiring the state lock\n"`,
		"event +10250 c2 lock_contention",
		"event +10300 c2 lock_wait_end",
		"event +10400 c2 lock_observed",
		"event +10500 c2 command_end",
		"event +11000 c0 integrity_check",
		"event +12000 c0 session_end",
	}
	if d := diffLines(got, want); d != "" {
		t.Fatalf("replay items (-got +want):\n%s", d)
	}
	h := items[0].Session
	if h.Commands != 2 || h.Of != 2 || h.Info.User != "alice" || !h.From.Equal(audittest.Base) {
		t.Fatalf("header = %+v, want 2 commands of 2 by alice from %v", h, audittest.Base)
	}
	if h.Command != nil {
		t.Fatalf("header names command %+v, want none for a whole session", h.Command)
	}
	if h.Term == nil || h.Term.Cols != 120 || h.Term.Rows != 40 || h.Term.Type != "xterm-256color" {
		t.Fatalf("header term = %+v, want 120x40 xterm-256color", h.Term)
	}
	for _, it := range items {
		if want := it.At.Sub(audittest.Base); it.Offset != want {
			t.Fatalf("%s: offset %v, want At - start = %v", replayed(it), it.Offset, want)
		}
	}
}

func TestReplayOneCommand(t *testing.T) {
	db := MustOpenDB(t)
	fx := audittest.RecordSession(t, db)
	got, items := collectReplay(t, db, audit.ReplayTarget{SessionID: fx.SessionID, CommandID: fx.Commands[1]})
	want := []string{
		"session +0 c0 " + fx.SessionID,
		"command +0 c2 plan",
		"event +0 c2 policy_decision",
		`output +1 c2 tfsh "tfsh: warning from rule \"evening-plans\" (.tfsh/policy.hcl:3): plans after 18:00 are reviewed\n"`,
		`output +200 c2 stdout "Acquiring state lock. This may take a few moments...\n"`,
		"event +300 c2 lock_wait",
		`output +6250 c2 stderr "\nError: Error acquiring the state lock\n"`,
		"event +6250 c2 lock_contention",
		"event +6300 c2 lock_wait_end",
		"event +6400 c2 lock_observed",
		"event +6500 c2 command_end",
	}
	if d := diffLines(got, want); d != "" {
		t.Fatalf("replay items (-got +want):\n%s", d)
	}
	h := items[0].Session
	if h.Commands != 1 || h.Of != 2 || h.Term != nil || h.Command == nil || h.Command.N != 2 || h.Command.ID != fx.Commands[1] {
		t.Fatalf("header = %+v, want command 2 of 2 with no terminal", h)
	}
	err := db.Replay(context.Background(), audit.ReplayTarget{SessionID: fx.SessionID, CommandID: "NOPE"}, func(audit.ReplayItem) error { return nil })
	if !errors.Is(err, audit.ErrNotFound) {
		t.Fatalf("replay of an unknown command: %v, want ErrNotFound", err)
	}
}

func TestReplayStopsWhenTold(t *testing.T) {
	db := MustOpenDB(t)
	fx := audittest.RecordSession(t, db)
	stop := errors.New("stop")
	n := 0
	err := db.Replay(context.Background(), audit.ReplayTarget{SessionID: fx.SessionID}, func(it audit.ReplayItem) error {
		n++
		if it.Kind == audit.ReplayOutput {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 4 {
		t.Fatalf("replay returned %v after %d items, want stop after 4", err, n)
	}
}

// TestReplayOffsetsNeverDecrease: a frame stored after one with a later
// time (stdout and stderr written at once) keeps the previous offset.
func TestReplayOffsetsNeverDecrease(t *testing.T) {
	db := MustOpenDB(t)
	clk := &audittest.Clock{}
	clk.Set(audittest.Base)
	db.Now = clk.Now
	ctx := context.Background()
	s, _, err := db.StartSession(ctx, testInfo(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.StartCommand(ctx, audit.CommandInfo{Typed: []string{"plan"}}, audit.Decision{Action: "allow"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ms := range []int{300, 200, 400} {
		clk.Set(audittest.Base.Add(time.Duration(ms) * time.Millisecond))
		c.Output(audit.Stdout).Write([]byte(fmt.Sprint(ms)))
	}
	if err := c.End(ctx, audit.CommandEnd{Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	got, _ := collectReplay(t, db, audit.ReplayTarget{SessionID: s.ID})
	want := []string{
		"session +0 c0 " + s.ID,
		"command +0 c1 ",
		"event +0 c1 policy_decision",
		`output +300 c1 stdout "300"`,
		`output +300 c1 stdout "200"`,
		`output +400 c1 stdout "400"`,
		"event +400 c1 command_end",
	}
	if d := diffLines(got, want); d != "" {
		t.Fatalf("replay items (-got +want):\n%s", d)
	}
}

func TestResolveReplay(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	if _, err := db.ResolveReplay(ctx, "last"); !errors.Is(err, audit.ErrNotFound) {
		t.Fatalf("last of an empty log: %v, want ErrNotFound", err)
	}
	fx := audittest.RecordSession(t, db)
	cmd := fx.Commands[1]
	tests := []struct {
		ref  string
		want audit.ReplayTarget
		err  string
	}{
		{ref: "last", want: audit.ReplayTarget{SessionID: fx.SessionID}},
		{ref: "", want: audit.ReplayTarget{SessionID: fx.SessionID}},
		{ref: fx.SessionID, want: audit.ReplayTarget{SessionID: fx.SessionID}},
		{ref: strings.ToLower(fx.SessionID[:20]), want: audit.ReplayTarget{SessionID: fx.SessionID}},
		{ref: cmd, want: audit.ReplayTarget{SessionID: fx.SessionID, CommandID: cmd}},
		{ref: strings.ToLower(cmd[:20]), want: audit.ReplayTarget{SessionID: fx.SessionID, CommandID: cmd}},
		// The session and its commands were made within seconds: their
		// IDs share the timestamp's first characters.
		{ref: fx.SessionID[:6], err: "ambiguous"},
		{ref: "ZZZZ", err: "no session or command"},
		{ref: "%", err: "no session or command"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			got, err := db.ResolveReplay(ctx, tt.ref)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ResolveReplay(%q) = %+v, %v, want an error with %q", tt.ref, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ResolveReplay(%q) = %+v, %v, want %+v", tt.ref, got, err, tt.want)
			}
		})
	}
	if got, err := db.ResolveCommand(ctx, strings.ToLower(cmd[:20])); err != nil || got != cmd {
		t.Fatalf("ResolveCommand(prefix) = %q, %v, want %q", got, err, cmd)
	}
	if _, err := db.ResolveCommand(ctx, cmd[:6]); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Fatalf("ResolveCommand(short prefix) = %v, want ambiguous", err)
	}
	if _, err := db.ResolveCommand(ctx, fx.SessionID); !errors.Is(err, audit.ErrNotFound) {
		t.Fatalf("ResolveCommand(session ID) = %v, want ErrNotFound", err)
	}
}

// diffLines shows where two lists of lines part.
func diffLines(got, want []string) string {
	var b strings.Builder
	for i := 0; i < max(len(got), len(want)); i++ {
		g, w := "", ""
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			fmt.Fprintf(&b, "%d:\n- %s\n+ %s\n", i, g, w)
		}
	}
	return b.String()
}
