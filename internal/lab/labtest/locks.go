package labtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// A LockReader returns the ID of the lock held now, "" if there is none. These read the lab's
// lock records directly, independently of the lock package they help to test.
type LockReader func(context.Context) (string, error)

// LocalLock reads the .terraform.tfstate.lock.info of a local-backend example (its presence,
// not the fcntl lock).
func LocalLock(dir string) LockReader {
	return func(context.Context) (string, error) {
		data, err := os.ReadFile(filepath.Join(dir, ".terraform.tfstate.lock.info"))
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		return LockInfoID(data)
	}
}

// DynamoLock reads the DynamoDB lock item of the default workspace.
func (b Backend) DynamoLock() LockReader {
	c := b.Dynamo.Client()
	return func(ctx context.Context) (string, error) {
		out, err := c.GetItem(ctx, &dynamodb.GetItemInput{
			TableName:      aws.String(b.Table),
			Key:            map[string]dtypes.AttributeValue{"LockID": &dtypes.AttributeValueMemberS{Value: b.LockID()}},
			ConsistentRead: aws.Bool(true),
		})
		if err != nil || len(out.Item) == 0 {
			return "", err
		}
		info, ok := out.Item["Info"].(*dtypes.AttributeValueMemberS)
		if !ok {
			return "", fmt.Errorf("lock item %s has no string Info: %v", b.LockID(), out.Item)
		}
		return LockInfoID([]byte(info.Value))
	}
}

// LockfileLock reads the S3 lockfile of the default workspace.
func (b Backend) LockfileLock() LockReader {
	c := b.S3.Client()
	return func(ctx context.Context) (string, error) {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.Bucket), Key: aws.String(b.LockfileKey())})
		var nsk *s3types.NoSuchKey
		if errors.As(err, &nsk) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		defer out.Body.Close()
		data, err := io.ReadAll(out.Body)
		if err != nil {
			return "", err
		}
		return LockInfoID(data)
	}
}

// Lock reads the lock where this backend keeps it: the lockfile when configured, else DynamoDB.
func (b Backend) Lock() LockReader {
	if b.Lockfile {
		return b.LockfileLock()
	}
	return b.DynamoLock()
}

// LockInfoID returns the ID of a LockInfo JSON record, which must have an ID and an Operation.
func LockInfoID(data []byte) (string, error) {
	var info struct{ ID, Operation string }
	if err := json.Unmarshal(data, &info); err != nil {
		return "", fmt.Errorf("lock info %q: %w", data, err)
	}
	if info.ID == "" || info.Operation == "" {
		return "", fmt.Errorf("lock info without ID or Operation: %s", data)
	}
	return info.ID, nil
}
