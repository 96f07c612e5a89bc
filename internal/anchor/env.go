package anchor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tfsh/tfsh/audit"
)

// Store is a place anchors are written to and read back from.
type Store interface {
	audit.AnchorSink
	audit.AnchorSource
	String() string
}

func (s *S3) String() string     { return "s3://" + s.Bucket + "/" + s.Prefix }
func (d *Dynamo) String() string { return "dynamodb table " + d.Table + " (prefix " + d.Prefix + ")" }

// requestTimeout bounds each request: a session's end waits for its
// anchors.
const requestTimeout = 10 * time.Second

// FromEnv returns the stores the environment names, none if it names none:
//
//	TFSH_ANCHOR_S3=s3://BUCKET[/PREFIX]       TFSH_ANCHOR_S3_ENDPOINT=URL (optional; path-style)
//	TFSH_ANCHOR_DYNAMODB=TABLE[/PREFIX]       TFSH_ANCHOR_DYNAMODB_ENDPOINT=URL (optional)
//
// with the AWS SDK's usual region and credentials (AWS_REGION,
// AWS_PROFILE, ...); the region defaults to us-east-1.
func FromEnv(ctx context.Context, getenv func(string) string) ([]Store, error) {
	s3v, dv := getenv("TFSH_ANCHOR_S3"), getenv("TFSH_ANCHOR_DYNAMODB")
	if s3v == "" && dv == "" {
		return nil, nil
	}
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRetryMaxAttempts(2),
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(requestTimeout)))
	if err != nil {
		return nil, fmt.Errorf("aws configuration for anchors: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	var out []Store
	if s3v != "" {
		rest, ok := strings.CutPrefix(s3v, "s3://")
		bucket, prefix, _ := strings.Cut(rest, "/")
		if !ok || bucket == "" {
			return nil, fmt.Errorf("TFSH_ANCHOR_S3=%q: want s3://BUCKET or s3://BUCKET/PREFIX", s3v)
		}
		endpoint := getenv("TFSH_ANCHOR_S3_ENDPOINT")
		c := s3.NewFromConfig(cfg, func(o *s3.Options) {
			if endpoint != "" {
				o.BaseEndpoint = aws.String(endpoint)
				o.UsePathStyle = true
			}
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		})
		out = append(out, &S3{Client: c, Bucket: bucket, Prefix: strings.TrimSuffix(prefix, "/")})
	}
	if dv != "" {
		table, prefix, _ := strings.Cut(dv, "/")
		if table == "" {
			return nil, fmt.Errorf("TFSH_ANCHOR_DYNAMODB=%q: want TABLE or TABLE/PREFIX", dv)
		}
		endpoint := getenv("TFSH_ANCHOR_DYNAMODB_ENDPOINT")
		c := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
			if endpoint != "" {
				o.BaseEndpoint = aws.String(endpoint)
			}
		})
		out = append(out, &Dynamo{Client: c, Table: table, Prefix: prefix})
	}
	return out, nil
}

// All reads the anchors of every source, one after the other.
func All(srcs ...audit.AnchorSource) audit.AnchorSource { return all(srcs) }

type all []audit.AnchorSource

func (a all) ReadAnchors(ctx context.Context) ([]audit.Anchor, error) {
	var out []audit.Anchor
	for _, s := range a {
		as, err := s.ReadAnchors(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, as...)
	}
	return out, nil
}
