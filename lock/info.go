package lock

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Info is terraform's LockInfo, as stored in a local .lock.info file, a
// DynamoDB item's Info attribute or an S3 .tflock object (reference §2).
type Info struct {
	ID        string    `json:"ID"`
	Operation string    `json:"Operation"`
	Info      string    `json:"Info"`
	Who       string    `json:"Who"`
	Version   string    `json:"Version"`
	Created   time.Time `json:"Created"`
	Path      string    `json:"Path"`
}

// JSON is the record as terraform writes it.
func (i Info) JSON() (string, error) {
	b, err := json.Marshal(i)
	return string(b), err
}

// InfoError says a lock record exists but cannot be read as LockInfo.
type InfoError struct {
	Where string // the file, item or object
	Err   error
}

func (e *InfoError) Error() string {
	return fmt.Sprintf("lock info in %s is unreadable: %v", e.Where, e.Err)
}
func (e *InfoError) Unwrap() error { return e.Err }

// ParseInfo reads LockInfo JSON. A record without an ID is an error: it is
// not a lock terraform would recognise as its own.
func ParseInfo(where string, data []byte) (*Info, error) {
	var in Info
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, &InfoError{Where: where, Err: err}
	}
	if strings.TrimSpace(in.ID) == "" {
		return nil, &InfoError{Where: where, Err: fmt.Errorf("no ID")}
	}
	return &in, nil
}

// Age is how long the lock has been held at now, or 0 when Created is unknown.
func (in *Info) Age(now time.Time) time.Duration {
	if in == nil || in.Created.IsZero() {
		return 0
	}
	return now.Sub(in.Created)
}

// OperationName turns terraform's operation into the word users typed:
// OperationTypeApply → apply.
func OperationName(op string) string {
	if s, ok := strings.CutPrefix(op, "OperationType"); ok {
		return strings.ToLower(s)
	}
	return op
}

// Operations lists the LockInfo operations a subcommand may record
// (reference §2), nil when any is possible.
func Operations(subcommand string) []string {
	switch subcommand {
	case "plan":
		return []string{"OperationTypePlan"}
	case "apply", "destroy":
		return []string{"OperationTypeApply"}
	case "refresh":
		return []string{"OperationTypeRefresh"}
	case "import", "console":
		return []string{"OperationTypeInvalid"}
	case "taint", "untaint":
		return []string{subcommand}
	case "state mv", "state rm", "state push", "state replace-provider":
		return []string{strings.ReplaceAll(subcommand, " ", "-")}
	case "workspace delete":
		return []string{"state-replace-provider", "workspace-delete"}
	case "workspace new":
		return []string{"workspace-new", "init"}
	}
	return nil
}
