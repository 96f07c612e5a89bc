package anchor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/tfsh/tfsh/audit"
)

// s3API is what the S3 sink uses of an S3 client.
type s3API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

// S3 keeps each anchor as its own object, PREFIX/SEQ-HASH.json (SEQ zero
// padded to 20 digits, so that keys sort in chain order), created with
// If-None-Match: * so that an anchor is never overwritten. Give the bucket
// versioning or object lock, and the log's writers put-only rights, for
// anchors nobody can take back.
type S3 struct {
	Client s3API
	Bucket string
	Prefix string // without a trailing slash; may be empty
}

func (s *S3) key(a audit.Anchor) string {
	k := fmt.Sprintf("%020d-%s.json", a.Seq, a.Hash)
	if s.Prefix != "" {
		k = s.Prefix + "/" + k
	}
	return k
}

// WriteAnchor creates the anchor's object; one that exists already is an
// error.
func (s *S3) WriteAnchor(ctx context.Context, a audit.Anchor) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode anchor: %w", err)
	}
	key := s.key(a)
	_, err = s.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key),
		Body: bytes.NewReader(b), IfNoneMatch: aws.String("*"), ContentType: aws.String("application/json")})
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "PreconditionFailed" || ae.ErrorCode() == "ConditionalRequestConflict") {
		return fmt.Errorf("write anchor s3://%s/%s: it exists already", s.Bucket, key)
	}
	if err != nil {
		return fmt.Errorf("write anchor s3://%s/%s: %w", s.Bucket, key, err)
	}
	return nil
}

// ReadAnchors lists and reads every anchor object under the prefix.
func (s *S3) ReadAnchors(ctx context.Context) ([]audit.Anchor, error) {
	prefix := ""
	if s.Prefix != "" {
		prefix = s.Prefix + "/"
	}
	var out []audit.Anchor
	p := s3.NewListObjectsV2Paginator(s.Client, &s3.ListObjectsV2Input{Bucket: aws.String(s.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list anchors in s3://%s/%s: %w", s.Bucket, prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if !strings.HasSuffix(key, ".json") || strings.Contains(key[len(prefix):], "/") {
				continue
			}
			a, err := s.read(ctx, key)
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
	}
	return out, nil
}

func (s *S3) read(ctx context.Context, key string) (audit.Anchor, error) {
	var a audit.Anchor
	obj, err := s.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key)})
	if err != nil {
		return a, fmt.Errorf("read anchor s3://%s/%s: %w", s.Bucket, key, err)
	}
	defer obj.Body.Close()
	b, err := io.ReadAll(io.LimitReader(obj.Body, 1<<20))
	if err != nil {
		return a, fmt.Errorf("read anchor s3://%s/%s: %w", s.Bucket, key, err)
	}
	if err := json.Unmarshal(b, &a); err != nil || a.Seq <= 0 || a.Hash == "" || s.key(a) != key {
		return a, fmt.Errorf("read anchor s3://%s/%s: not an anchor, or not the one its key names", s.Bucket, key)
	}
	return a, nil
}
