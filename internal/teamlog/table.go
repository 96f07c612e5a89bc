package teamlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// tableAPI is what InitTable uses of a DynamoDB client.
type tableAPI interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
}

var indexes = []struct{ name, hash string }{
	{IndexByDay, attrDay},
	{IndexByState, attrStateKey},
	{IndexBySession, attrSessionID},
}

// ErrNoExpiry reports an endpoint without time-to-live support (dynalite,
// some emulators): the table is ready, but nothing removes expired items.
var ErrNoExpiry = errors.New("this DynamoDB endpoint does not support expiry (UpdateTimeToLive): the table is ready, items carry their expires attribute, but nothing removes them")

// SchemaError reports an existing table whose keys are not the shared
// log's.
type SchemaError struct {
	Table    string
	Problems []string
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("table %s exists but is not a tfsh audit table: %s; choose another name with --table", e.Table, strings.Join(e.Problems, "; "))
}

// InitTable creates the shared table (on-demand billing; keys and indexes
// as docs/audit.md describes) and waits until it and its indexes are
// active. An existing table with the same keys is fine (created is false);
// one with other keys is a *SchemaError. ttl turns on expiry by the
// "expires" attribute.
func InitTable(ctx context.Context, c tableAPI, table string, ttl bool) (created bool, err error) {
	str := func(name string) types.AttributeDefinition {
		return types.AttributeDefinition{AttributeName: aws.String(name), AttributeType: types.ScalarAttributeTypeS}
	}
	in := &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{str(attrPK), str(attrSK), str(attrDay), str(attrAtID), str(attrStateKey), str(attrSessionID)},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(attrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(attrSK), KeyType: types.KeyTypeRange},
		},
	}
	for _, ix := range indexes {
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{
			IndexName: aws.String(ix.name),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(ix.hash), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(attrAtID), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		})
	}
	_, err = c.CreateTable(ctx, in)
	var inUse *types.ResourceInUseException
	switch {
	case errors.As(err, &inUse):
	case err != nil:
		return false, fmt.Errorf("create table %s: %w", table, err)
	default:
		created = true
	}
	if err := waitActive(ctx, c, table); err != nil {
		return created, err
	}
	if ttl {
		_, err := c.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName:               aws.String(table),
			TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(attrExpires), Enabled: aws.Bool(true)},
		})
		var apiErr smithy.APIError
		switch {
		case err == nil:
		// Asking again once it is on is an error on AWS; it is already
		// what was asked.
		case strings.Contains(err.Error(), "already enabled"):
		case errors.As(err, &apiErr) && apiErr.ErrorCode() == "UnknownOperationException":
			return created, ErrNoExpiry
		default:
			return created, fmt.Errorf("turn on expiry (attribute %s) of table %s: %w", attrExpires, table, err)
		}
	}
	return created, nil
}

// waitActive waits until the table and its indexes are ACTIVE, checking
// its keys on the way.
func waitActive(ctx context.Context, c tableAPI, table string) error {
	for {
		out, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err != nil {
			return fmt.Errorf("describe table %s: %w", table, err)
		}
		if probs := checkSchema(out.Table); len(probs) > 0 {
			return &SchemaError{Table: table, Problems: probs}
		}
		active := out.Table.TableStatus == types.TableStatusActive
		for _, g := range out.Table.GlobalSecondaryIndexes {
			active = active && g.IndexStatus == types.IndexStatusActive
		}
		if active {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for table %s to be active: %w", table, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func keysOf(ks []types.KeySchemaElement) string {
	var parts []string
	for _, k := range ks {
		parts = append(parts, aws.ToString(k.AttributeName)+" "+strings.ToLower(string(k.KeyType)))
	}
	return strings.Join(parts, ", ")
}

func checkSchema(t *types.TableDescription) []string {
	var probs []string
	if t == nil {
		return []string{"no description"}
	}
	if got, want := keysOf(t.KeySchema), attrPK+" hash, "+attrSK+" range"; got != want {
		probs = append(probs, fmt.Sprintf("its key is (%s), want (%s)", got, want))
	}
	attrTypes := map[string]types.ScalarAttributeType{}
	for _, a := range t.AttributeDefinitions {
		attrTypes[aws.ToString(a.AttributeName)] = a.AttributeType
	}
	for name, typ := range attrTypes {
		if typ != "S" && slices.Contains([]string{attrPK, attrSK, attrDay, attrAtID, attrStateKey, attrSessionID}, name) {
			probs = append(probs, fmt.Sprintf("attribute %s is of type %s, want S", name, typ))
		}
	}
	for _, ix := range indexes {
		i := slices.IndexFunc(t.GlobalSecondaryIndexes, func(g types.GlobalSecondaryIndexDescription) bool {
			return aws.ToString(g.IndexName) == ix.name
		})
		if i < 0 {
			probs = append(probs, "no index "+ix.name)
			continue
		}
		g := t.GlobalSecondaryIndexes[i]
		if got, want := keysOf(g.KeySchema), ix.hash+" hash, "+attrAtID+" range"; got != want {
			probs = append(probs, fmt.Sprintf("index %s's key is (%s), want (%s)", ix.name, got, want))
		}
		if g.Projection == nil || g.Projection.ProjectionType != types.ProjectionTypeAll {
			probs = append(probs, "index "+ix.name+" does not project all attributes")
		}
	}
	return probs
}
