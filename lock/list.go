package lock

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Lister lists every lock a backend holds, beyond the current state's:
// every item of the DynamoDB table, every .tflock of the bucket, every
// workspace's local state.
type Lister interface {
	List(ctx context.Context) ([]View, error)
}

// List returns every lock the table and the bucket hold. DynamoDB items
// whose LockID ends in -md5 are state digests, not locks, and are skipped.
func (o *s3Observer) List(ctx context.Context) ([]View, error) {
	var out []View
	if o.table != "" {
		var start map[string]dtypes.AttributeValue
		for {
			page, err := o.dynamo.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(o.table), ExclusiveStartKey: start, ConsistentRead: aws.Bool(true)})
			if err != nil {
				return out, fmt.Errorf("scan lock table %s: %w", o.table, awsProblem(err))
			}
			for _, item := range page.Items {
				id, _ := item["LockID"].(*dtypes.AttributeValueMemberS)
				if id == nil || strings.HasSuffix(id.Value, "-md5") {
					continue
				}
				v := View{Mechanism: DynamoDB, Where: "dynamodb://" + o.table + "/" + id.Value, At: time.Now(), Held: true}
				if s, ok := item["Info"].(*dtypes.AttributeValueMemberS); ok {
					v.Info, v.Err = ParseInfo(v.Where, []byte(s.Value))
				} else {
					v.Err = &InfoError{Where: v.Where, Err: fmt.Errorf("no string Info attribute")}
				}
				out = append(out, v)
			}
			if len(page.LastEvaluatedKey) == 0 {
				break
			}
			start = page.LastEvaluatedKey
		}
	}
	if o.object != "" {
		var token *string
		for {
			page, err := o.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(o.bucket), ContinuationToken: token})
			if err != nil {
				return out, fmt.Errorf("list bucket %s: %w", o.bucket, awsProblem(err))
			}
			for _, obj := range page.Contents {
				key := aws.ToString(obj.Key)
				if !strings.HasSuffix(key, ".tflock") {
					continue
				}
				one := &s3Observer{bucket: o.bucket, object: key, s3: o.s3}
				if v := one.observeObject(ctx); v.Held || v.Err != nil {
					out = append(out, v)
				}
			}
			if !aws.ToBool(page.IsTruncated) {
				break
			}
			token = page.NextContinuationToken
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Where < out[j].Where })
	return out, nil
}

// List returns the lock of every workspace's local state: the default
// state and each one under the workspace directory.
func (o *localObserver) List(ctx context.Context) ([]View, error) {
	paths := []string{o.path}
	if o.workspaceDir != "" {
		more, _ := filepath.Glob(filepath.Join(o.workspaceDir, "*", filepath.Base(o.defaultPath)))
		paths = append(paths, more...)
		if o.defaultPath != o.path {
			paths = append(paths, o.defaultPath)
		}
	}
	seen := map[string]bool{}
	var out []View
	for _, p := range paths {
		if seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, (&localObserver{path: p}).Observe(ctx)...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Where < out[j].Where })
	return out, nil
}
