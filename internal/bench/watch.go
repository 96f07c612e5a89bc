package main

import (
	"context"
	"fmt"
	"github.com/tfsh/tfsh/internal/bench/result"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tfsh/tfsh/internal/lab"
	"github.com/tfsh/tfsh/lock"
)

// watchBench measures what tfsh watch costs: requests per poll, and so per
// second at --interval 1s, for 1, 10 and 100 watched states, on the lab's
// dynalite and gofakes3 through the watcher's own code (lock.TableWatcher,
// the SDK configured from the environment as tfsh watch is). Each state
// has what terraform leaves in the table and bucket: its lock item and
// -md5 digest item, its state object and its .tflock object. Steady: no
// lock changes between polls. Churn: every lock changes hands before every
// poll (the worst case: each changed .tflock is read again).
func watchBench(polls int) {
	ctx := context.Background()
	s3srv, dyn, _, stop := startLab("tfsh-bench-watch-")
	defer stop()
	env := map[string]string{
		"AWS_ENDPOINT_URL_DYNAMODB": dyn.URL(), "AWS_ENDPOINT_URL_S3": s3srv.URL(),
		"AWS_ACCESS_KEY_ID": lab.AccessKeyID, "AWS_SECRET_ACCESS_KEY": lab.SecretAccessKey, "AWS_REGION": lab.Region,
	}
	for k, v := range env {
		os.Setenv(k, v)
	}
	dc, sc := dyn.Client(), s3srv.Client()
	fmt.Printf("tfsh watch cost, %d polls at --interval 1s per row (lab: dynalite and gofakes3 on loopback)\n\n", polls)
	fmt.Println("| watching | states | requests/poll, steady | requests/s | requests/s per state | requests/poll, every lock changed | poll time, median |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	seq := 0
	for _, mode := range []string{"table", "bucket", "both"} {
		for _, n := range []int{1, 10, 100} {
			seq++
			spec := lock.TeamSpec{}
			if mode != "bucket" {
				spec.Table = fmt.Sprintf("bench-locks-%d", seq)
				if err := dyn.CreateLockTable(ctx, spec.Table); err != nil {
					fail(err.Error())
				}
			}
			if mode != "table" {
				spec.Bucket = fmt.Sprintf("bench-states-%d", seq)
				if err := s3srv.CreateBucket(ctx, spec.Bucket); err != nil {
					fail(err.Error())
				}
			}
			place := func() {
				for i := range n {
					key := fmt.Sprintf("team/state-%03d/terraform.tfstate", i)
					info, _ := lock.NewInfo("OperationTypeApply", "", "bench@host", "1.10.10", key, time.Now()).JSON()
					if spec.Table != "" {
						for _, item := range []map[string]dtypes.AttributeValue{
							{"LockID": &dtypes.AttributeValueMemberS{Value: "b/" + key}, "Info": &dtypes.AttributeValueMemberS{Value: info}},
							{"LockID": &dtypes.AttributeValueMemberS{Value: "b/" + key + "-md5"}, "Digest": &dtypes.AttributeValueMemberS{Value: "0123456789abcdef"}},
						} {
							if _, err := dc.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(spec.Table), Item: item}); err != nil {
								fail(err.Error())
							}
						}
					}
					if spec.Bucket != "" {
						for k, body := range map[string]string{key: `{"version":4}`, key + ".tflock": info} {
							if _, err := sc.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(spec.Bucket), Key: aws.String(k), Body: strings.NewReader(body)}); err != nil {
								fail(err.Error())
							}
						}
					}
				}
			}
			place()
			w, err := lock.NewTableWatcher(ctx, spec, func(k string) string { return env[k] })
			if err != nil {
				fail(err.Error())
			}
			run := func(churn bool) (float64, time.Duration) {
				w.Poll(ctx) // the first poll reads everything once
				var times []time.Duration
				before := w.Requests()
				tick := time.NewTicker(time.Second)
				for range polls {
					<-tick.C
					if churn {
						place()
					}
					t0 := time.Now()
					if _, probs := w.Poll(ctx); len(probs) > 0 {
						fail(fmt.Sprint(probs))
					}
					times = append(times, time.Since(t0))
				}
				tick.Stop()
				sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
				return float64(w.Requests()-before) / float64(polls), times[len(times)/2]
			}
			steady, med := run(false)
			churn, _ := run(true)
			fmt.Printf("| %s | %d | %.1f | %.1f | %.2f | %.1f | %s |\n", mode, n, steady, steady, steady/float64(n), churn, med.Round(100*time.Microsecond))
			emit("watch", result.Record{Kind: "watch", Row: mode, Params: map[string]string{"states": strconv.Itoa(n)},
				Stats: []result.Stat{result.One("requests/s", "req/s", steady), result.One("requests/s per state", "req/s", steady/float64(n)),
					result.One("requests/poll, every lock changed", "", churn), result.One("poll time", "ms", float64(med.Microseconds())/1000)}})
		}
	}
}
