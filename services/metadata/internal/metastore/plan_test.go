package metastore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-ml/sluice/services/metadata/internal/mlmd"
)

// TestLineagePlanUsesIndexes guards the lineage query against full event scans on SQLite once
// the planner has statistics (ANALYZE), where it would otherwise prefer scanning events.
func TestLineagePlanUsesIndexes(t *testing.T) {
	s, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "plan.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	generateGraph(t, s, 2000)
	for _, d := range []mlmd.Direction{mlmd.Upstream, mlmd.Downstream, mlmd.Bidirectional} {
		q, args := lineageSQL(mlmd.LineageQuery{ArtifactIDs: []int64{5}, ExecutionIDs: []int64{7}, Direction: d, MaxHops: 5})
		rows, err := s.r.Query("EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		for _, line := range plan {
			if strings.HasPrefix(line, "SCAN ev") || strings.HasPrefix(line, "SCAN event") {
				t.Errorf("direction %d: lineage query scans events:\n%s", d, strings.Join(plan, "\n"))
			}
		}
	}
}
