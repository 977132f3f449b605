package main

import (
	"context"
	"fmt"
	"os"

	"github.com/sluice-ml/sluice/libs/artifacts"
)

// s3Uploader stores exports in S3 through libs/artifacts (every object with
// its sha256 digest). The store comes from S3_ENDPOINT, S3_ACCESS_KEY,
// S3_SECRET_KEY and S3_REGION, which the training service injects into
// every replica; the bucket is the URI's (S3_BUCKET is its default).
type s3Uploader struct{}

// UploadDir copies localDir to uri (s3://bucket/prefix).
func (s3Uploader) UploadDir(ctx context.Context, localDir, uri string) error {
	bucket, key, err := artifacts.ParseURI(uri)
	if err != nil {
		return err
	}
	if bucket == "" {
		bucket = os.Getenv("S3_BUCKET")
	}
	store, err := artifacts.New(artifacts.Config{
		Endpoint: os.Getenv("S3_ENDPOINT"), AccessKey: os.Getenv("S3_ACCESS_KEY"), SecretKey: os.Getenv("S3_SECRET_KEY"),
		Bucket: bucket, Region: os.Getenv("S3_REGION"),
	})
	if err != nil {
		return fmt.Errorf("S3 store for %s (set S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY): %w", uri, err)
	}
	_, err = store.PutDir(ctx, key, localDir)
	return err
}
