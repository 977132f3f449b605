// Package metastoretest opens real metastore databases for tests: a SQLite file in the
// test's temp dir, and a private schema of the PostgreSQL database named by
// METADATA_TEST_DATABASE_URL (scripts/pg-test.sh start prints it).
package metastoretest

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-ml/sluice/services/metadata/internal/metastore"
)

// Each runs fn as a subtest against SQLite and, when METADATA_TEST_DATABASE_URL is set,
// PostgreSQL (required under CI=true, skipped otherwise).
func Each(t *testing.T, fn func(t *testing.T, s *metastore.Store)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}

// SQLite opens a fresh SQLite store closed at the end of the test.
func SQLite(t testing.TB) *metastore.Store {
	t.Helper()
	s, err := metastore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "mlmd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Postgres opens a store in a fresh schema named after the test, dropped at the end. It skips
// the test without METADATA_TEST_DATABASE_URL, unless CI=true.
func Postgres(t testing.TB) *metastore.Store {
	t.Helper()
	base := os.Getenv("METADATA_TEST_DATABASE_URL")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("METADATA_TEST_DATABASE_URL is unset under CI=true (start PostgreSQL with scripts/pg-test.sh)")
		}
		t.Skip("METADATA_TEST_DATABASE_URL is unset")
	}
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	schema := fmt.Sprintf("t_%x", h.Sum64())
	ctx := context.Background()
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE; CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	s, err := metastore.OpenPostgres(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		if db, err := sql.Open("pgx", base); err == nil {
			_, _ = db.ExecContext(context.Background(), `DROP SCHEMA IF EXISTS `+schema+` CASCADE`)
			db.Close()
		}
	})
	return s
}
