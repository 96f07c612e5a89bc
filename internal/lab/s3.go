package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3 is an in-memory S3 server (gofakes3) on a loopback port, served by this process.
//
// gofakes3 v1.2.0 checks PutObject's If-None-Match and If-Match headers against the stored
// object under its backend lock and answers 412 PreconditionFailed when they do not hold, so
// OpenTofu's S3 lockfile (written with If-None-Match: *) excludes for real.
type S3 struct {
	backend *s3mem.Backend
	srv     *http.Server
	ln      net.Listener
	url     string
	done    chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// StartS3 starts an S3 server on 127.0.0.1 on a free port. Close stops it.
func StartS3(ctx context.Context) (*S3, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("lab s3: %w", err)
	}
	backend := s3mem.New()
	faker := gofakes3.New(backend,
		gofakes3.WithLogger(gofakes3.DiscardLog()),
		// Requests come from processes on this machine; a skew check would only make a test
		// that fakes the clock fail in a confusing way.
		gofakes3.WithTimeSkewLimit(0),
	)
	s := &S3{
		backend: backend,
		ln:      ln,
		url:     "http://" + ln.Addr().String(),
		done:    make(chan struct{}),
		srv: &http.Server{
			Handler:           faker.Server(),
			ReadHeaderTimeout: 10 * time.Second,
		},
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln) // returns http.ErrServerClosed on Close
	}()
	return s, nil
}

// URL is the server's base URL, http://127.0.0.1:PORT, for path-style requests.
func (s *S3) URL() string { return s.url }

// CreateBucket creates a bucket. Creating one that exists is an error.
func (s *S3) CreateBucket(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.backend.CreateBucket(name); err != nil {
		return fmt.Errorf("lab s3: create bucket %q: %w", name, err)
	}
	return nil
}

// Client returns an S3 client for this server: path-style, fake static credentials, region
// us-east-1, checksums only where the API requires them.
func (s *S3) Client() *s3.Client { return s3Client(s.url) }

func s3Client(url string) *s3.Client {
	return s3.New(s3.Options{
		Region:                     Region,
		Credentials:                credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
		BaseEndpoint:               aws.String(url),
		UsePathStyle:               true,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// Close stops the server at once (open connections are closed, not drained: a graceful
// shutdown waits seconds for connections a client dialled but never used) and drops everything
// it stored. It is safe to call more than once.
func (s *S3) Close() error {
	s.closeOnce.Do(func() {
		if err := s.srv.Close(); err != nil {
			s.closeErr = fmt.Errorf("lab s3: close: %w", err)
		}
		<-s.done
	})
	return s.closeErr
}
