package metastore

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/url"
	"strings"

	"github.com/pressly/goose/v3"
)

// SchemaNameForTest derives a short, valid schema name from a test name.
func SchemaNameForTest(testName string) string {
	h := fnv.New64a()
	h.Write([]byte(testName))
	return fmt.Sprintf("t_%x", h.Sum64())
}

// CreateTestSchema (re)creates schema in the database at dbURL and returns a URL whose
// search_path selects it.
func CreateTestSchema(ctx context.Context, dbURL, schema string) (string, error) {
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE; CREATE SCHEMA `+schema); err != nil {
		return "", fmt.Errorf("create schema %s: %w", schema, err)
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// DropTestSchema drops schema and everything in it.
func DropTestSchema(ctx context.Context, dbURL, schema string) error {
	if !strings.HasPrefix(schema, "t_") {
		return fmt.Errorf("refusing to drop %q", schema)
	}
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`)
	return err
}

// MigrateTo applies the migrations of the database at dsn (as Open names it) up to version
// only, as an older release of the service left it.
func MigrateTo(ctx context.Context, dsn string, version int64) error {
	driver, d, dir := "sqlite", goose.DialectSQLite3, "migrations/sqlite"
	if strings.HasPrefix(dsn, "postgres://") {
		driver, d, dir = "pgx", goose.DialectPostgres, "migrations/postgres"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	fsys, err := fs.Sub(migrations, dir)
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(d, db, fsys)
	if err != nil {
		return err
	}
	_, err = p.UpTo(ctx, version)
	return err
}
