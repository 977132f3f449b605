package metastore_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/metadata/internal/metastore"
	"github.com/sluice-ml/sluice/services/metadata/internal/mlmd"
	"github.com/sluice-ml/sluice/services/metadata/internal/mlmd/mlmdtest"
)

func TestSQLiteContract(t *testing.T) {
	mlmdtest.RunContract(t, func(t *testing.T) mlmd.Repo {
		s, err := metastore.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "mlmd.db"))
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestPostgresContract(t *testing.T) {
	url := postgresURL(t)
	mlmdtest.RunContract(t, func(t *testing.T) mlmd.Repo {
		return freshPostgres(t, url)
	})
}

func TestSQLiteReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mlmd.db")
	s, err := metastore.OpenSQLite(t.Context(), path)
	require.NoError(t, err)
	ids, err := s.PutContexts(t.Context(), []mlmd.Context{{Type: "system.Pipeline", Name: "p"}})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	s, err = metastore.OpenSQLite(t.Context(), path) // migrations are already applied
	require.NoError(t, err)
	defer s.Close()
	cs, err := s.GetContextsByID(t.Context(), ids)
	require.NoError(t, err)
	require.Len(t, cs, 1)
}

// postgresURL returns METADATA_TEST_DATABASE_URL; without it the test is skipped, except
// under CI=true where PostgreSQL is required.
func postgresURL(t testing.TB) string {
	url := os.Getenv("METADATA_TEST_DATABASE_URL")
	if url == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("METADATA_TEST_DATABASE_URL is unset under CI=true (start PostgreSQL with scripts/pg-test.sh)")
		}
		t.Skip("METADATA_TEST_DATABASE_URL is unset")
	}
	return url
}

// freshPostgres gives the test its own schema in the test database, dropped afterwards.
func freshPostgres(t testing.TB, url string) *metastore.Store {
	schema := metastore.SchemaNameForTest(t.Name())
	dsn, err := metastore.CreateTestSchema(context.Background(), url, schema)
	require.NoError(t, err)
	s, err := metastore.OpenPostgres(context.Background(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() {
		s.Close()
		_ = metastore.DropTestSchema(context.Background(), url, schema)
	})
	return s
}
