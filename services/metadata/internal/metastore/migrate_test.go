package metastore_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	v1 "github.com/sluice-ml/sluice/services/metadata/api/metadatav1"
	"github.com/sluice-ml/sluice/services/metadata/internal/metastore"
	"github.com/sluice-ml/sluice/services/metadata/internal/mlmd"
)

// TestSourceMigrationKeepsIngestedEvents: a database whose ingested_event was written by a
// release that keyed source events by CloudEvent id only keeps its rows through migration
// 00003, and an event recorded then is not applied again when redelivered after the upgrade,
// whatever source it carries; new events are keyed by source and id.
func TestSourceMigrationKeepsIngestedEvents(t *testing.T) {
	for _, backend := range []struct {
		name, driver string
		dsn          func(t *testing.T) string
	}{
		{"sqlite", "sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "mlmd.db") }},
		{"postgres", "pgx", func(t *testing.T) string {
			url := postgresURL(t)
			schema := metastore.SchemaNameForTest(t.Name())
			dsn, err := metastore.CreateTestSchema(context.Background(), url, schema)
			require.NoError(t, err)
			t.Cleanup(func() { _ = metastore.DropTestSchema(context.Background(), url, schema) })
			return dsn
		}},
	} {
		t.Run(backend.name, func(t *testing.T) {
			ctx := t.Context()
			dsn := backend.dsn(t)
			require.NoError(t, metastore.MigrateTo(ctx, dsn, 2))
			old, err := sql.Open(backend.driver, dsn)
			require.NoError(t, err)
			q := `INSERT INTO ingested_event (ce_id, type, received_ms) VALUES ('old-1', 't', 1), ('old-2', 't', 2)`
			_, err = old.ExecContext(ctx, q)
			require.NoError(t, err)
			require.NoError(t, old.Close())

			s, err := metastore.Open(ctx, dsn)
			require.NoError(t, err)
			defer s.Close()
			n, err := s.IngestedCount(ctx)
			require.NoError(t, err)
			assert.EqualValues(t, 2, n, "rows recorded before the migration are kept")

			req := func(source, id string) mlmd.IngestRequest {
				return mlmd.IngestRequest{Source: source, SourceID: id, SourceType: "io.sluice.pipeline.task.succeeded.v1",
					Execution: &mlmd.Execution{Type: "system.ContainerExecution", Name: source + "/" + id, ExternalID: "task:" + source + "/" + id, LastKnownState: v1.ExecutionComplete}}
			}
			r, err := s.Ingest(ctx, req("/sluice/pipelines", "old-1"))
			require.NoError(t, err)
			assert.False(t, r.Applied, "an event recorded by id only is not applied again")
			res, errs, err := s.IngestBatch(ctx, []mlmd.IngestRequest{req("/sluice/a", "old-2"), req("/sluice/a", "new"), req("/sluice/b", "new")})
			require.NoError(t, err)
			for _, e := range errs {
				require.NoError(t, e)
			}
			assert.Equal(t, []bool{false, true, true}, []bool{res[0].Applied, res[1].Applied, res[2].Applied})
			n, err = s.IngestedCount(ctx)
			require.NoError(t, err)
			assert.EqualValues(t, 4, n)
			_, err = s.Ingest(ctx, mlmd.IngestRequest{SourceID: "x"})
			assert.ErrorContains(t, err, "source: must be set")
		})
	}
}
