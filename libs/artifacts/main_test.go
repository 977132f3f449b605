package artifacts_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/devstack"
)

// testBucket is created once in TestMain on a real embedded S3 gateway.
const testBucket = "artifacts-test"

var testS3 *devstack.S3Server

func TestMain(m *testing.M) {
	devstack.RunChild() // the S3 gateway child re-executes this binary
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sluice-artifacts-s3-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	srv, err := devstack.StartS3(context.Background(), devstack.S3Config{DataDir: dir}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := srv.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	testS3 = srv
	st, err := artifacts.New(storeConfig())
	if err == nil {
		err = st.EnsureBucket(context.Background())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func storeConfig() artifacts.Config {
	return artifacts.Config{
		Endpoint:  testS3.Endpoint,
		AccessKey: testS3.AccessKey,
		SecretKey: testS3.SecretKey,
		Region:    testS3.Region,
		Bucket:    testBucket,
	}
}

var prefixSeq atomic.Int64

// newStore returns a Store confined to a fresh prefix of the test bucket.
func newStore(tb testing.TB) *artifacts.Store {
	tb.Helper()
	root, err := artifacts.New(storeConfig())
	if err != nil {
		tb.Fatal(err)
	}
	st, err := root.Sub(fmt.Sprintf("t%d", prefixSeq.Add(1)))
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// rawClient is a plain minio-go client on the same gateway.
func rawClient(tb testing.TB) *minio.Client {
	tb.Helper()
	root, err := artifacts.New(storeConfig())
	if err != nil {
		tb.Fatal(err)
	}
	return root.Client()
}
