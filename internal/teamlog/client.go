package teamlog

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// DefaultTable is the table init-table creates when none is named.
const DefaultTable = "tfsh-audit"

// Scheme prefixes a table name in --from: dynamodb://TABLE.
const Scheme = "dynamodb://"

// ParseURL reads dynamodb://TABLE.
func ParseURL(s string) (string, error) {
	t, ok := strings.CutPrefix(s, Scheme)
	if !ok || t == "" || strings.ContainsAny(t, "/?#") {
		return "", fmt.Errorf("%q: want dynamodb://TABLE", s)
	}
	return t, nil
}

// Timeouts bound the client's requests.
type Timeouts struct {
	Dial, Request time.Duration
	Attempts      int // including the first
}

// Background is for shipping behind a command's back: an unreachable
// endpoint fails within about a second, and the events wait for the next
// try.
var Background = Timeouts{Dial: 500 * time.Millisecond, Request: 2 * time.Second, Attempts: 2}

// Foreground is for a command the user waits on (pull, push, init-table).
var Foreground = Timeouts{Dial: 3 * time.Second, Request: 30 * time.Second, Attempts: 4}

// NewClient returns a DynamoDB client configured as the AWS SDK configures
// itself (profiles, AWS_REGION, AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_DYNAMODB,
// credentials), with these timeouts; the region defaults to us-east-1.
func NewClient(ctx context.Context, t Timeouts) (*dynamodb.Client, error) {
	hc := awshttp.NewBuildableClient().WithTimeout(t.Request).WithDialerOptions(func(d *net.Dialer) {
		d.Timeout = t.Dial
	}).WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConnsPerHost = 64
	})
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRetryMaxAttempts(t.Attempts), config.WithHTTPClient(hc))
	if err != nil {
		return nil, fmt.Errorf("aws configuration for the shared audit table: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return dynamodb.NewFromConfig(cfg), nil
}
