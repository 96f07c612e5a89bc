package lock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
)

// requestTimeout bounds one read of a lock record: a slow or unreachable
// server shows up as an observation problem, never as a stalled command.
const requestTimeout = 3 * time.Second

// The consumer-owned slices of the AWS clients the observers use.
type dynamoAPI interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	dynamoWriter // only an Editor writes
}

type s3API interface {
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	s3Writer // only an Editor writes
}

// s3Observer reads the S3 backend's locks: the DynamoDB item, the .tflock
// object, or both (reference §6).
type s3Observer struct {
	bucket string
	lockID string // DynamoDB LockID: bucket/key with the workspace prefix
	table  string // "" without DynamoDB locking
	object string // the .tflock key; "" without the lockfile
	dynamo dynamoAPI
	s3     s3API
}

// AWSSettings are the parts of an S3 backend configuration the observers
// use, resolved with the environment as terraform would.
type AWSSettings struct {
	Region          string
	S3Endpoint      string
	DynamoEndpoint  string
	PathStyle       bool
	Profile         string
	SkipMetadataAPI bool
}

// awsSettings reads the backend settings of terraform ≥1.5 (endpoint,
// dynamodb_endpoint, force_path_style) and of terraform ≥1.6 and tofu
// (endpoints.s3, endpoints.dynamodb, use_path_style), then the
// environment variables both honour.
func awsSettings(c map[string]string, getenv Getenv) AWSSettings {
	first := func(vals ...string) string {
		for _, v := range vals {
			if v != "" {
				return v
			}
		}
		return ""
	}
	return AWSSettings{
		Region:          first(c["region"], getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION")),
		S3Endpoint:      first(c["endpoints.s3"], c["endpoint"], getenv("AWS_ENDPOINT_URL_S3"), getenv("AWS_S3_ENDPOINT"), getenv("AWS_ENDPOINT_URL")),
		DynamoEndpoint:  first(c["endpoints.dynamodb"], c["dynamodb_endpoint"], getenv("AWS_ENDPOINT_URL_DYNAMODB"), getenv("AWS_DYNAMODB_ENDPOINT"), getenv("AWS_ENDPOINT_URL")),
		PathStyle:       c["use_path_style"] == "true" || c["force_path_style"] == "true",
		Profile:         first(c["profile"], getenv("AWS_PROFILE")),
		SkipMetadataAPI: c["skip_metadata_api_check"] == "true" || strings.EqualFold(getenv("AWS_EC2_METADATA_DISABLED"), "true"),
	}
}

func newS3Observer(ctx context.Context, ref StateRef, getenv Getenv) (*s3Observer, error) {
	c := ref.Config
	o := &s3Observer{bucket: c["bucket"], lockID: ref.Key, table: c["dynamodb_table"]}
	if o.bucket == "" || c["key"] == "" {
		return nil, &UnsupportedError{Backend: "s3", Reason: "bucket or key unknown until init"}
	}
	if c["use_lockfile"] == "true" {
		o.object = strings.TrimPrefix(ref.Key, o.bucket+"/") + ".tflock"
	}
	if o.table == "" && o.object == "" {
		return nil, &UnsupportedError{Backend: "s3", Reason: "neither dynamodb_table nor use_lockfile is set: terraform takes no lock"}
	}
	set := awsSettings(c, getenv)
	cfg, err := awsConfig(ctx, set, ref.Credentials, getenv)
	if err != nil {
		return nil, fmt.Errorf("aws configuration for the s3 backend: %w", err)
	}
	if o.table != "" {
		o.dynamo = newDynamo(cfg, set)
	}
	o.s3 = newS3(cfg, set)
	return o, nil
}

// awsConfig is the SDK configuration of the observers, the editors and the
// team watcher: region, profile and credentials from the backend settings,
// then the environment, then the SDK's own chain (which also reads
// AWS_ENDPOINT_URL and its per-service forms).
func awsConfig(ctx context.Context, set AWSSettings, cred map[string]string, getenv Getenv) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithRetryMaxAttempts(1),   // the next poll is the retry
		config.WithLogger(logging.Nop{}), // never write on the user's terminal
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(requestTimeout)),
	}
	if set.Region != "" {
		opts = append(opts, config.WithRegion(set.Region))
	}
	if set.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(set.Profile))
	}
	if set.SkipMetadataAPI {
		opts = append(opts, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	// Credentials: the backend block's own, then the environment terraform
	// runs with, then the SDK chain (profiles, SSO, instance roles).
	switch {
	case cred["access_key"] != "" && cred["secret_key"] != "":
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cred["access_key"], cred["secret_key"], cred["token"])))
	case set.Profile == "" && getenv("AWS_ACCESS_KEY_ID") != "" && getenv("AWS_SECRET_ACCESS_KEY") != "":
		// terraform ≥1.6 and tofu prefer a configured profile to these.
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SESSION_TOKEN"))))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return cfg, awsProblem(err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1" // terraform requires one; the lab and most endpoints accept this
	}
	return cfg, nil
}

func newDynamo(cfg aws.Config, set AWSSettings) *dynamodb.Client {
	return dynamodb.NewFromConfig(cfg, func(op *dynamodb.Options) {
		if set.DynamoEndpoint != "" {
			op.BaseEndpoint = aws.String(set.DynamoEndpoint)
		}
	})
}

func newS3(cfg aws.Config, set AWSSettings) *s3.Client {
	return s3.NewFromConfig(cfg, func(op *s3.Options) {
		if set.S3Endpoint != "" {
			op.BaseEndpoint = aws.String(set.S3Endpoint)
		}
		op.UsePathStyle = set.PathStyle
		// Lock objects are small JSON; servers that send no checksum are fine.
		op.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
}

func (o *s3Observer) Mechanisms() []Mechanism {
	var m []Mechanism
	if o.object != "" {
		m = append(m, S3Lockfile)
	}
	if o.table != "" {
		m = append(m, DynamoDB)
	}
	return m
}

// Observe reads both mechanisms at once when both are configured.
func (o *s3Observer) Observe(ctx context.Context) []View {
	var views []View
	done := make(chan View, 2)
	n := 0
	if o.object != "" {
		n++
		go func() { done <- o.observeObject(ctx) }()
	}
	if o.table != "" {
		n++
		go func() { done <- o.observeItem(ctx) }()
	}
	for range n {
		views = append(views, <-done)
	}
	if len(views) == 2 && views[0].Mechanism != S3Lockfile {
		views[0], views[1] = views[1], views[0]
	}
	return views
}

func (o *s3Observer) observeItem(ctx context.Context) View {
	v := View{Mechanism: DynamoDB, Where: "dynamodb://" + o.table + "/" + o.lockID}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	out, err := o.dynamo.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(o.table),
		Key:            map[string]dtypes.AttributeValue{"LockID": &dtypes.AttributeValueMemberS{Value: o.lockID}},
		ConsistentRead: aws.Bool(true),
	})
	v.At = time.Now()
	if err != nil {
		v.Err = fmt.Errorf("read lock item %s: %w", v.Where, awsProblem(err))
		return v
	}
	if len(out.Item) == 0 {
		return v
	}
	v.Held = true
	s, ok := out.Item["Info"].(*dtypes.AttributeValueMemberS)
	if !ok {
		v.Err = &InfoError{Where: v.Where, Err: errors.New("no string Info attribute")}
		return v
	}
	v.Info, v.Err = ParseInfo(v.Where, []byte(s.Value))
	return v
}

func (o *s3Observer) observeObject(ctx context.Context) View {
	v := View{Mechanism: S3Lockfile, Where: "s3://" + o.bucket + "/" + o.object}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	out, err := o.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(o.bucket), Key: aws.String(o.object)})
	v.At = time.Now()
	if notFound(err) {
		return v
	}
	if err != nil {
		v.Err = fmt.Errorf("read lock object %s: %w", v.Where, awsProblem(err))
		return v
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, 1<<20))
	if err != nil {
		v.Err = fmt.Errorf("read lock object %s: %w", v.Where, err)
		return v
	}
	v.Held = true
	v.Info, v.Err = ParseInfo(v.Where, data)
	return v
}

func notFound(err error) bool {
	if err == nil {
		return false
	}
	var nsk *s3types.NoSuchKey
	var nf *s3types.NotFound
	var ae smithy.APIError
	return errors.As(err, &nsk) || errors.As(err, &nf) || errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchKey" || ae.ErrorCode() == "NotFound")
}

// awsProblem shortens SDK errors to what a user acts on, and keeps out
// what may carry secrets: an API error is its code and message; a network
// error its operation and address; anything else (credential providers
// quote the output of a credential_process, for one) only its first part.
func awsProblem(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return fmt.Errorf("%s: %s", ae.ErrorCode(), ae.ErrorMessage())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("timed out")
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return fmt.Errorf("cannot reach %v: %v", oe.Addr, oe.Err)
	}
	msg := err.Error()
	if strings.Contains(msg, "credential") {
		return errors.New("no usable AWS credentials (the backend configuration, the environment and the SDK's chain gave none that work)")
	}
	if i := strings.Index(msg, "output"); i >= 0 {
		msg = msg[:i] + "output (withheld)"
	}
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return errors.New(msg)
}
