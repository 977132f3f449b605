// Package metastore is the SQL implementation of mlmd.Repo, on SQLite (pure Go,
// modernc.org/sqlite; the embedded default) and PostgreSQL (github.com/jackc/pgx/v5 through
// database/sql). The schema is versioned by goose migrations embedded per dialect; the
// lineage walk is one WITH RECURSIVE query per request on both.
package metastore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/sluice-ml/sluice/services/metadata/internal/mlmd"
)

//go:embed migrations
var migrations embed.FS

type dialect int

const (
	dialectSQLite dialect = iota + 1
	dialectPostgres
)

// Store is an mlmd.Repo over a SQL database. It is safe for concurrent use.
type Store struct {
	dialect dialect
	w       *sql.DB // transactions that write
	r       *sql.DB // reads
	// typeIDs caches the ids of types named by kind and name (version ""), for IngestBatch:
	// types are never deleted or renamed, so an id once committed stays valid.
	typeIDs sync.Map // string -> int64
	// legacyIDs is set when ingested_event holds rows recorded before it kept sources
	// (ce_source = '', migration 00003): their ids are then looked up under every source.
	// No such row is ever written again, so the flag is read once, at open.
	legacyIDs bool
}

var _ mlmd.Repo = (*Store)(nil)

// Open opens the store named by dsn: a "postgres://" or "postgresql://" URL selects
// PostgreSQL, anything else is a SQLite file path. Migrations are applied before returning.
func Open(ctx context.Context, dsn string) (*Store, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return OpenPostgres(ctx, dsn)
	}
	return OpenSQLite(ctx, dsn)
}

// OpenSQLite opens (creating if needed) the SQLite database file at path in WAL mode and
// migrates it. Writes are serialised on one connection; reads use a separate pool.
func OpenSQLite(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("metastore: sqlite path is empty")
	}
	base := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	w, err := sql.Open("sqlite", base+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("metastore: open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	if err := migrate(ctx, w, goose.DialectSQLite3, "migrations/sqlite", nil); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", base+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("metastore: open sqlite %s: %w", path, err)
	}
	r.SetMaxOpenConns(8)
	return newStore(ctx, dialectSQLite, w, r)
}

// OpenPostgres connects to the PostgreSQL database at url (libpq URL or DSN accepted by pgx)
// and migrates it under an advisory lock, so several replicas may start at once.
func OpenPostgres(ctx context.Context, url string) (*Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("metastore: open postgres: %w", err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("metastore: connect postgres: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("metastore: migration lock: %w", err)
	}
	if err := migrate(ctx, db, goose.DialectPostgres, "migrations/postgres", locker); err != nil {
		db.Close()
		return nil, err
	}
	return newStore(ctx, dialectPostgres, db, db)
}

func newStore(ctx context.Context, d dialect, w, r *sql.DB) (*Store, error) {
	s := &Store{dialect: d, w: w, r: r}
	err := w.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM ingested_event WHERE ce_source = '')`).Scan(&s.legacyIDs)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("metastore: look for source events recorded without their source: %w", err)
	}
	return s, nil
}

func migrate(ctx context.Context, db *sql.DB, d goose.Dialect, dir string, locker lock.SessionLocker) error {
	fsys, err := fs.Sub(migrations, dir)
	if err != nil {
		return fmt.Errorf("metastore: migrations: %w", err)
	}
	var opts []goose.ProviderOption
	if locker != nil {
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(d, db, fsys, opts...)
	if err != nil {
		return fmt.Errorf("metastore: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("metastore: migrate: %w", err)
	}
	return nil
}

// Close closes the database handles.
func (s *Store) Close() error {
	if s.r != s.w {
		return errors.Join(s.r.Close(), s.w.Close())
	}
	return s.w.Close()
}

// DB returns the writer handle, for benchmarks and maintenance tools.
func (s *Store) DB() *sql.DB { return s.w }

// rebind rewrites '?' placeholders to PostgreSQL's $n. Queries in this package never contain
// '?' inside literals.
func (s *Store) rebind(q string) string {
	if s.dialect != dialectPostgres || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// queryer is satisfied by *sql.DB and *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

// inTx runs fn in a write transaction, committing on nil and rolling back otherwise.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("metastore: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("metastore: commit: %w", s.classify(err))
	}
	return nil
}

// classify maps driver constraint errors onto the mlmd sentinels.
func (s *Store) classify(err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505":
			return fmt.Errorf("%w: %s", mlmd.ErrAlreadyExists, pe.Detail)
		case "23503":
			return fmt.Errorf("%w: references an unknown node: %s", mlmd.ErrInvalidArgument, pe.Detail)
		}
		return err
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %s", mlmd.ErrAlreadyExists, se.Error())
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: references an unknown node", mlmd.ErrInvalidArgument)
		}
	}
	return err
}

func nowMillis() int64 { return time.Now().UnixMilli() }

// placeholders returns "?,?,...,?" with n marks.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?,", n-1) + "?"
}

// chunk splits ids into slices of at most size elements.
func chunk(ids []int64, size int) [][]int64 {
	var out [][]int64
	for len(ids) > size {
		out = append(out, ids[:size])
		ids = ids[size:]
	}
	if len(ids) > 0 {
		out = append(out, ids)
	}
	return out
}

func int64Args(ids []int64) []any {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return args
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
