package anchor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tfsh/tfsh/audit"
)

// dynamoAPI is what the DynamoDB sink uses of a DynamoDB client.
type dynamoAPI interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// KeyAttribute is the DynamoDB table's partition key (a string): PREFIX
// "/" SEQ "-" HASH, SEQ zero padded to 20 digits.
const KeyAttribute = "AnchorID"

// Dynamo keeps each anchor as an item of a table whose partition key is
// KeyAttribute (string), put on condition attribute_not_exists so that an
// anchor is never overwritten. The item holds the anchor's JSON line in
// "Anchor". Give the log's writers PutItem only.
type Dynamo struct {
	Client dynamoAPI
	Table  string
	Prefix string // tells logs sharing a table apart; may be empty
}

func (d *Dynamo) key(a audit.Anchor) string {
	return fmt.Sprintf("%s/%020d-%s", d.Prefix, a.Seq, a.Hash)
}

// WriteAnchor puts the anchor's item; one that exists already is an error.
func (d *Dynamo) WriteAnchor(ctx context.Context, a audit.Anchor) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode anchor: %w", err)
	}
	key := d.key(a)
	_, err = d.Client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(d.Table),
		Item: map[string]types.AttributeValue{
			KeyAttribute: &types.AttributeValueMemberS{Value: key},
			"Prefix":     &types.AttributeValueMemberS{Value: d.Prefix},
			"Anchor":     &types.AttributeValueMemberS{Value: string(b)},
		},
		ConditionExpression:      aws.String("attribute_not_exists(#k)"),
		ExpressionAttributeNames: map[string]string{"#k": KeyAttribute},
	})
	var cf *types.ConditionalCheckFailedException
	if errors.As(err, &cf) {
		return fmt.Errorf("write anchor %s in table %s: it exists already", key, d.Table)
	}
	if err != nil {
		return fmt.Errorf("write anchor %s in table %s: %w", key, d.Table, err)
	}
	return nil
}

// ReadAnchors scans the table for the prefix's anchors.
func (d *Dynamo) ReadAnchors(ctx context.Context) ([]audit.Anchor, error) {
	var out []audit.Anchor
	p := dynamodb.NewScanPaginator(d.Client, &dynamodb.ScanInput{
		TableName:                 aws.String(d.Table),
		FilterExpression:          aws.String("#p = :p"),
		ExpressionAttributeNames:  map[string]string{"#p": "Prefix"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": &types.AttributeValueMemberS{Value: d.Prefix}},
		ConsistentRead:            aws.Bool(true),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("read anchors from table %s: %w", d.Table, err)
		}
		for _, item := range page.Items {
			k, _ := item[KeyAttribute].(*types.AttributeValueMemberS)
			v, _ := item["Anchor"].(*types.AttributeValueMemberS)
			var a audit.Anchor
			if k == nil || v == nil || json.Unmarshal([]byte(v.Value), &a) != nil || a.Seq <= 0 || d.key(a) != k.Value {
				key := ""
				if k != nil {
					key = k.Value
				}
				return nil, fmt.Errorf("read anchors from table %s: item %q is not an anchor, or not the one its key names", d.Table, key)
			}
			out = append(out, a)
		}
	}
	return out, nil
}

// CreateTable creates a table for Dynamo anchors (partition key
// KeyAttribute, a string; on-demand billing) and waits until it is active.
func CreateTable(ctx context.Context, c *dynamodb.Client, table string) error {
	_, err := c.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(KeyAttribute), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(KeyAttribute), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		return fmt.Errorf("create anchor table %s: %w", table, err)
	}
	err = dynamodb.NewTableExistsWaiter(c).Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}, time.Minute)
	if err != nil {
		return fmt.Errorf("create anchor table %s: %w", table, err)
	}
	return nil
}
