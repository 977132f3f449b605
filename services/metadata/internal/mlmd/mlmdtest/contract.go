// Package mlmdtest holds the contract every mlmd.Repo implementation must pass.
package mlmdtest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	v1 "github.com/sluice-ml/sluice/services/metadata/api/metadatav1"
	"github.com/sluice-ml/sluice/services/metadata/internal/mlmd"
)

// RunContract runs the repository contract against fresh repositories made by newRepo (one
// per subtest; newRepo registers its own cleanup).
func RunContract(t *testing.T, newRepo func(t *testing.T) mlmd.Repo) {
	cases := []struct {
		name string
		run  func(t *testing.T, r mlmd.Repo)
	}{
		{"types are registered, extended and never retyped", testTypes},
		{"artifacts are inserted, updated and validated", testArtifacts},
		{"fan-in inputs are returned in recorded order", testFanIn},
		{"diamond lineage returns each node and edge once", testDiamond},
		{"lineage honours direction and hops", testLineageHops},
		{"property filters select matching nodes", testPropertyFilters},
		{"pagination is stable under inserts", testPagination},
		{"put execution is atomic and idempotent", testPutExecutionIdempotent},
		{"cache lookup returns the newest complete execution", testCacheLookup},
		{"contexts nest without cycles and appear in lineage", testContexts},
		{"ingest applies each source event once and moves state forward", testIngest},
		{"ingest is atomic and names the bad field", testIngestAtomic},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, newRepo(t))
		})
	}
}

func testTypes(t *testing.T, r mlmd.Repo) {
	ctx := t.Context()
	ids, err := r.PutTypes(ctx, []mlmd.Type{
		{Kind: v1.ArtifactKind, Name: "system.Model", BaseType: "MODEL", Properties: map[string]v1.PropertyType{"framework": v1.PropertyString}},
		{Kind: v1.ExecutionKind, Name: "system.ContainerExecution"},
	})
	require.NoError(t, err)
	require.Len(t, ids, 2)

	again, err := r.PutTypes(ctx, []mlmd.Type{{Kind: v1.ArtifactKind, Name: "system.Model", Properties: map[string]v1.PropertyType{"accuracy": v1.PropertyDouble}}})
	require.NoError(t, err)
	assert.Equal(t, ids[0], again[0], "same kind+name+version is the same type")

	_, err = r.PutTypes(ctx, []mlmd.Type{{Kind: v1.ArtifactKind, Name: "system.Model", Properties: map[string]v1.PropertyType{"accuracy": v1.PropertyString}}})
	require.ErrorIs(t, err, mlmd.ErrAlreadyExists)
	assert.ErrorContains(t, err, "types[0].properties.accuracy")

	_, err = r.PutTypes(ctx, []mlmd.Type{{Kind: "WIDGET", Name: "x"}})
	require.ErrorIs(t, err, mlmd.ErrInvalidArgument)
	assert.ErrorContains(t, err, "types[0].kind")

	types, err := r.GetTypes(ctx, v1.ArtifactKind)
	require.NoError(t, err)
	require.Len(t, types, 1)
	assert.Equal(t, map[string]v1.PropertyType{"framework": v1.PropertyString, "accuracy": v1.PropertyDouble}, types[0].Properties)
	assert.Equal(t, "MODEL", types[0].BaseType)
}

func testArtifacts(t *testing.T, r mlmd.Repo) {
	ctx := t.Context()
	_, err := r.PutTypes(ctx, []mlmd.Type{{Kind: v1.ArtifactKind, Name: "system.Dataset", Properties: map[string]v1.PropertyType{"rows": v1.PropertyInt}}})
	require.NoError(t, err)
	st, err := v1.Struct(map[string]any{"k": "v"})
	require.NoError(t, err)
	ids, err := r.PutArtifacts(ctx, []mlmd.Artifact{{
		Type: "system.Dataset", Name: "train", URI: "s3://b/train", State: v1.ArtifactLive, ExternalID: "ext-train",
		Properties:       map[string]mlmd.Value{"rows": v1.Int(10)},
		CustomProperties: map[string]mlmd.Value{"digest": v1.String("sha256:ab"), "meta": st, "ok": v1.Bool(true), "score": v1.Double(0.5)},
	}})
	require.NoError(t, err)
	got, err := r.GetArtifactsByID(ctx, ids)
	require.NoError(t, err)
	require.Len(t, got, 1)
	a := got[0]
	assert.Equal(t, "system.Dataset", a.Type)
	assert.Equal(t, "s3://b/train", a.URI)
	assert.Equal(t, v1.ArtifactLive, a.State)
	assert.Equal(t, int64(10), *a.Properties["rows"].IntValue)
	assert.Equal(t, "sha256:ab", *a.CustomProperties["digest"].StringValue)
	assert.JSONEq(t, `{"k":"v"}`, string(a.CustomProperties["meta"].StructValue))
	assert.True(t, *a.CustomProperties["ok"].BoolValue)
	assert.Positive(t, a.CreateTimeSinceEpoch)

	// Names are unique per type.
	_, err = r.PutArtifacts(ctx, []mlmd.Artifact{{Type: "system.Dataset", Name: "train"}})
	require.ErrorIs(t, err, mlmd.ErrAlreadyExists)
	_, err = r.PutArtifacts(ctx, []mlmd.Artifact{{Type: "system.Model", Name: "train"}})
	require.NoError(t, err, "the same name under another type is fine")

	// Declared properties are typed by the type.
	_, err = r.PutArtifacts(ctx, []mlmd.Artifact{{Type: "system.Dataset", Properties: map[string]mlmd.Value{"rows": v1.String("ten")}}})
	require.ErrorIs(t, err, mlmd.ErrInvalidArgument)
	assert.ErrorContains(t, err, "artifacts[0].properties.rows")
	_, err = r.PutArtifacts(ctx, []mlmd.Artifact{{Type: "system.Dataset"}, {Type: "system.Dataset", Properties: map[string]mlmd.Value{"cols": v1.Int(1)}}})
	require.ErrorIs(t, err, mlmd.ErrInvalidArgument)
	assert.ErrorContains(t, err, "artifacts[1].properties.cols")
	_, err = r.PutArtifacts(ctx, []mlmd.Artifact{{Type: "system.Dataset", State: "GONE"}})
	assert.ErrorContains(t, err, "artifacts[0].state")
	_, err = r.PutArtifacts(ctx, []mlmd.Artifact{{}})
	assert.ErrorContains(t, err, "artifacts[0]: one of type_id and type must be set")

	// Update by id replaces fields and properties.
	a.State = v1.ArtifactDeleted
	a.CustomProperties = map[string]mlmd.Value{"digest": v1.String("sha256:cd")}
	_, err = r.PutArtifacts(ctx, []mlmd.Artifact{a})
	require.NoError(t, err)
	got, err = r.GetArtifactsByID(ctx, ids)
	require.NoError(t, err)
	assert.Equal(t, v1.ArtifactDeleted, got[0].State)
	assert.Equal(t, map[string]mlmd.Value{"digest": v1.String("sha256:cd")}, got[0].CustomProperties)
	_, err = r.PutArtifacts(ctx, []mlmd.Artifact{{ID: 999999, Type: "system.Dataset"}})
	require.ErrorIs(t, err, mlmd.ErrNotFound)

	// A failed batch writes nothing.
	page, err := r.ListArtifacts(ctx, mlmd.ListRequest{})
	require.NoError(t, err)
	assert.Len(t, page.Items, 2)

	// Events must reference existing nodes.
	err = r.PutEvents(ctx, []mlmd.Event{{ArtifactID: ids[0], ExecutionID: 424242, Type: v1.EventInput}})
	require.ErrorIs(t, err, mlmd.ErrInvalidArgument)
	assert.ErrorContains(t, err, "events[0]")
	err = r.PutEvents(ctx, []mlmd.Event{{ArtifactID: ids[0], ExecutionID: 1, Type: "READ"}})
	assert.ErrorContains(t, err, "events[0].type")
	// So must attributions and associations.
	err = r.PutAttributionsAndAssociations(ctx, []mlmd.Attribution{{ContextID: 424242, ArtifactID: ids[0]}}, nil)
	require.ErrorIs(t, err, mlmd.ErrInvalidArgument)
	assert.ErrorContains(t, err, "attributions[0]")
	err = r.PutAttributionsAndAssociations(ctx, nil, []mlmd.Association{{ContextID: 424242, ExecutionID: 424243}})
	require.ErrorIs(t, err, mlmd.ErrInvalidArgument)
	assert.ErrorContains(t, err, "associations[0]")
}

// graph is a small helper for building lineage fixtures.
type graph struct {
	t    *testing.T
	r    mlmd.Repo
	arts map[string]int64
	exec map[string]int64
}

func newGraph(t *testing.T, r mlmd.Repo) *graph {
	return &graph{t: t, r: r, arts: map[string]int64{}, exec: map[string]int64{}}
}

func (g *graph) artifact(name string) int64 {
	ids, err := g.r.PutArtifacts(g.t.Context(), []mlmd.Artifact{{Type: "system.Dataset", Name: name, URI: "s3://test/" + name, State: v1.ArtifactLive}})
	require.NoError(g.t, err)
	g.arts[name] = ids[0]
	return ids[0]
}

// step records execution name consuming ins and producing outs (artifacts created as needed).
func (g *graph) step(name string, ins, outs []string) int64 {
	ctx := g.t.Context()
	ids, err := g.r.PutExecutions(ctx, []mlmd.Execution{{Type: "system.ContainerExecution", Name: name, LastKnownState: v1.ExecutionComplete}})
	require.NoError(g.t, err)
	g.exec[name] = ids[0]
	var evs []mlmd.Event
	for _, in := range ins {
		evs = append(evs, mlmd.Event{ArtifactID: g.arts[in], ExecutionID: ids[0], Type: v1.EventInput, Path: &v1.EventPath{Steps: []v1.Step{v1.KeyStep("in")}}})
	}
	for _, out := range outs {
		if _, ok := g.arts[out]; !ok {
			g.artifact(out)
		}
		evs = append(evs, mlmd.Event{ArtifactID: g.arts[out], ExecutionID: ids[0], Type: v1.EventOutput, Path: &v1.EventPath{Steps: []v1.Step{v1.KeyStep("out")}}})
	}
	require.NoError(g.t, g.r.PutEvents(ctx, evs))
	return ids[0]
}

func (g *graph) lineage(q mlmd.LineageQuery) (arts, execs []string, edges []string) {
	lg, err := g.r.GetLineageSubgraph(g.t.Context(), q)
	require.NoError(g.t, err)
	an, en := map[int64]string{}, map[int64]string{}
	for _, a := range lg.Artifacts {
		an[a.ID] = a.Name
		arts = append(arts, a.Name)
	}
	for _, e := range lg.Executions {
		en[e.ID] = e.Name
		execs = append(execs, e.Name)
	}
	for _, ev := range lg.Events {
		require.Contains(g.t, an, ev.ArtifactID, "edge endpoints are in the graph")
		require.Contains(g.t, en, ev.ExecutionID, "edge endpoints are in the graph")
		if ev.Type.IsInput() {
			edges = append(edges, an[ev.ArtifactID]+"->"+en[ev.ExecutionID])
		} else {
			edges = append(edges, en[ev.ExecutionID]+"->"+an[ev.ArtifactID])
		}
	}
	slices.Sort(arts)
	slices.Sort(execs)
	slices.Sort(edges)
	return arts, execs, edges
}

func testFanIn(t *testing.T, r mlmd.Repo) {
	ctx := t.Context()
	g := newGraph(t, r)
	// Producers are recorded in an order unrelated to the input index, so artifact ids do not
	// follow the recorded order.
	g.step("p3", nil, []string{"d3"})
	g.step("p1", nil, []string{"d1"})
	g.step("p2", nil, []string{"d2"})
	res, err := r.PutExecution(ctx, mlmd.PutExecutionRequest{
		Execution: mlmd.Execution{Type: "system.ContainerExecution", Name: "join", LastKnownState: v1.ExecutionComplete},
		ArtifactEventPairs: []mlmd.ArtifactAndEvent{
			{Event: &mlmd.Event{ArtifactID: g.arts["d1"], Type: v1.EventInput, Path: &v1.EventPath{Steps: []v1.Step{v1.KeyStep("data"), v1.IndexStep(0)}}}},
			{Event: &mlmd.Event{ArtifactID: g.arts["d2"], Type: v1.EventInput, Path: &v1.EventPath{Steps: []v1.Step{v1.KeyStep("data"), v1.IndexStep(1)}}}},
			{Event: &mlmd.Event{ArtifactID: g.arts["d3"], Type: v1.EventInput, Path: &v1.EventPath{Steps: []v1.Step{v1.KeyStep("data"), v1.IndexStep(2)}}}},
			{Artifact: &mlmd.Artifact{Type: "system.Dataset", Name: "joined", URI: "s3://test/joined"}, Event: &mlmd.Event{Type: v1.EventOutput, Path: &v1.EventPath{Steps: []v1.Step{v1.KeyStep("out")}}}},
		},
	})
	require.NoError(t, err)
	evs, err := r.GetEventsByExecutionIDs(ctx, []int64{res.ExecutionID})
	require.NoError(t, err)
	require.Len(t, evs, 4)
	for i, want := range []string{"d1", "d2", "d3"} {
		assert.Equal(t, g.arts[want], evs[i].ArtifactID, "event %d", i)
		assert.Equal(t, v1.EventInput, evs[i].Type)
		require.NotNil(t, evs[i].Path)
		require.Len(t, evs[i].Path.Steps, 2)
		assert.Equal(t, "data", *evs[i].Path.Steps[0].Key)
		assert.Equal(t, int64(i), *evs[i].Path.Steps[1].Index)
		assert.Positive(t, evs[i].MillisecondsSinceEpoch)
	}
	assert.Equal(t, v1.EventOutput, evs[3].Type)
	assert.Equal(t, res.ArtifactIDs[3], evs[3].ArtifactID)

	arts, execs, edges := g.lineage(mlmd.LineageQuery{ArtifactURIs: []string{"s3://test/joined"}, Direction: mlmd.Upstream, MaxHops: 5})
	assert.Equal(t, []string{"d1", "d2", "d3", "joined"}, arts)
	assert.Equal(t, []string{"join", "p1", "p2", "p3"}, execs)
	assert.Equal(t, []string{"d1->join", "d2->join", "d3->join", "join->joined", "p1->d1", "p2->d2", "p3->d3"}, edges)

	byArt, err := r.GetEventsByArtifactIDs(ctx, []int64{g.arts["d2"]})
	require.NoError(t, err)
	require.Len(t, byArt, 2)
	assert.Equal(t, v1.EventOutput, byArt[0].Type, "the producer's event was recorded first")
	assert.Equal(t, v1.EventInput, byArt[1].Type)
}

// diamond builds m->N->o->Q->r and N->p->Q, plus an unrelated consumer Z of o producing z.
func diamond(t *testing.T, r mlmd.Repo) *graph {
	g := newGraph(t, r)
	g.artifact("m")
	g.step("N", []string{"m"}, []string{"o", "p"})
	g.step("Q", []string{"o", "p"}, []string{"r"})
	g.step("Z", []string{"o"}, []string{"z"})
	return g
}

func testDiamond(t *testing.T, r mlmd.Repo) {
	g := diamond(t, r)
	arts, execs, edges := g.lineage(mlmd.LineageQuery{ArtifactIDs: []int64{g.arts["r"]}, Direction: mlmd.Upstream, MaxHops: 10})
	assert.Equal(t, []string{"m", "o", "p", "r"}, arts)
	assert.Equal(t, []string{"N", "Q"}, execs)
	assert.Equal(t, []string{"N->o", "N->p", "Q->r", "m->N", "o->Q", "p->Q"}, edges)

	arts, execs, edges = g.lineage(mlmd.LineageQuery{ArtifactIDs: []int64{g.arts["m"]}, Direction: mlmd.Downstream, MaxHops: 10})
	assert.Equal(t, []string{"m", "o", "p", "r", "z"}, arts)
	assert.Equal(t, []string{"N", "Q", "Z"}, execs)
	assert.Equal(t, []string{"N->o", "N->p", "Q->r", "Z->z", "m->N", "o->Q", "o->Z", "p->Q"}, edges)

	// Starting from both ends at once still yields each node and edge once.
	lg, err := r.GetLineageSubgraph(t.Context(), mlmd.LineageQuery{ArtifactIDs: []int64{g.arts["r"], g.arts["z"]}, ExecutionIDs: []int64{g.exec["Q"]}, Direction: mlmd.Bidirectional, MaxHops: 10})
	require.NoError(t, err)
	assert.Len(t, lg.Artifacts, 5)
	assert.Len(t, lg.Executions, 3)
	assert.Len(t, lg.Events, 8)
	require.NotEmpty(t, lg.Types)
}

func testLineageHops(t *testing.T, r mlmd.Repo) {
	g := diamond(t, r)
	arts, execs, edges := g.lineage(mlmd.LineageQuery{ArtifactIDs: []int64{g.arts["r"]}, Direction: mlmd.Upstream, MaxHops: 1})
	assert.Equal(t, []string{"r"}, arts)
	assert.Equal(t, []string{"Q"}, execs)
	assert.Equal(t, []string{"Q->r"}, edges)

	arts, execs, edges = g.lineage(mlmd.LineageQuery{ArtifactIDs: []int64{g.arts["r"]}, Direction: mlmd.Upstream, MaxHops: 2})
	assert.Equal(t, []string{"o", "p", "r"}, arts)
	assert.Equal(t, []string{"Q"}, execs)
	assert.Equal(t, []string{"Q->r", "o->Q", "p->Q"}, edges)

	arts, execs, _ = g.lineage(mlmd.LineageQuery{ArtifactIDs: []int64{g.arts["r"]}, Direction: mlmd.Upstream, MaxHops: 0})
	assert.Equal(t, []string{"r"}, arts)
	assert.Empty(t, execs)

	arts, execs, edges = g.lineage(mlmd.LineageQuery{ExecutionIDs: []int64{g.exec["Q"]}, Direction: mlmd.Downstream, MaxHops: 3})
	assert.Equal(t, []string{"r"}, arts)
	assert.Equal(t, []string{"Q"}, execs)
	assert.Equal(t, []string{"Q->r"}, edges)

	arts, execs, edges = g.lineage(mlmd.LineageQuery{ArtifactIDs: []int64{g.arts["o"]}, Direction: mlmd.Bidirectional, MaxHops: 1})
	assert.Equal(t, []string{"o"}, arts)
	assert.Equal(t, []string{"N", "Q", "Z"}, execs)
	assert.Equal(t, []string{"N->o", "o->Q", "o->Z"}, edges)

	_, err := r.GetLineageSubgraph(t.Context(), mlmd.LineageQuery{ArtifactIDs: []int64{987654}, Direction: mlmd.Upstream, MaxHops: 1})
	require.ErrorIs(t, err, mlmd.ErrNotFound)
	_, err = r.GetLineageSubgraph(t.Context(), mlmd.LineageQuery{Direction: mlmd.Upstream, MaxHops: 1})
	require.ErrorIs(t, err, mlmd.ErrInvalidArgument)
	_, err = r.GetLineageSubgraph(t.Context(), mlmd.LineageQuery{ArtifactIDs: []int64{g.arts["r"]}, MaxHops: -1})
	assert.ErrorContains(t, err, "hops")
}

func testPropertyFilters(t *testing.T, r mlmd.Repo) {
	ctx := t.Context()
	_, err := r.PutTypes(ctx, []mlmd.Type{{Kind: v1.ArtifactKind, Name: "system.Model", Properties: map[string]v1.PropertyType{"accuracy": v1.PropertyDouble, "epochs": v1.PropertyInt}}})
	require.NoError(t, err)
	models := []mlmd.Artifact{
		{Type: "system.Model", Name: "a", URI: "s3://m/a", Properties: map[string]mlmd.Value{"accuracy": v1.Double(0.97), "epochs": v1.Int(10)}, CustomProperties: map[string]mlmd.Value{"framework": v1.String("torch"), "prod": v1.Bool(true)}},
		{Type: "system.Model", Name: "b", URI: "s3://m/b", Properties: map[string]mlmd.Value{"accuracy": v1.Double(0.90), "epochs": v1.Int(20)}, CustomProperties: map[string]mlmd.Value{"framework": v1.String("tf"), "prod": v1.Bool(false)}},
		{Type: "system.Model", Name: "c", URI: "s3://m/c", Properties: map[string]mlmd.Value{"accuracy": v1.Double(0.99), "epochs": v1.Int(5)}, CustomProperties: map[string]mlmd.Value{"framework": v1.String("tf")}},
		{Type: "system.Dataset", Name: "a", URI: "s3://m/a", CustomProperties: map[string]mlmd.Value{"framework": v1.String("tf")}},
	}
	_, err = r.PutArtifacts(ctx, models)
	require.NoError(t, err)
	names := func(f mlmd.Filter) []string {
		t.Helper()
		p, err := r.ListArtifacts(ctx, mlmd.ListRequest{Filter: f, PageSize: 100})
		require.NoError(t, err)
		var out []string
		for _, a := range p.Items {
			out = append(out, a.Type+"/"+a.Name)
		}
		return out
	}
	assert.Equal(t, []string{"system.Model/a", "system.Model/c"}, names(mlmd.Filter{Properties: []mlmd.PropertyPredicate{{Name: "accuracy", Op: mlmd.OpGt, Value: v1.Double(0.95)}}}))
	assert.Equal(t, []string{"system.Model/b", "system.Model/c", "system.Dataset/a"}, names(mlmd.Filter{Properties: []mlmd.PropertyPredicate{{Custom: true, Name: "framework", Op: mlmd.OpEq, Value: v1.String("tf")}}}))
	assert.Equal(t, []string{"system.Model/b", "system.Model/c"}, names(mlmd.Filter{TypeName: "system.Model", Properties: []mlmd.PropertyPredicate{{Custom: true, Name: "framework", Op: mlmd.OpEq, Value: v1.String("tf")}}}))
	assert.Equal(t, []string{"system.Model/a", "system.Model/b"}, names(mlmd.Filter{Properties: []mlmd.PropertyPredicate{{Name: "epochs", Op: mlmd.OpGe, Value: v1.Int(10)}}}))
	assert.Equal(t, []string{"system.Model/c"}, names(mlmd.Filter{Properties: []mlmd.PropertyPredicate{{Name: "epochs", Op: mlmd.OpLt, Value: v1.Int(10)}, {Name: "accuracy", Op: mlmd.OpGe, Value: v1.Double(0.99)}}}))
	assert.Equal(t, []string{"system.Model/a"}, names(mlmd.Filter{Properties: []mlmd.PropertyPredicate{{Custom: true, Name: "prod", Op: mlmd.OpEq, Value: v1.Bool(true)}}}))
	assert.Equal(t, []string{"system.Model/b"}, names(mlmd.Filter{Properties: []mlmd.PropertyPredicate{{Name: "accuracy", Op: mlmd.OpLt, Value: v1.Double(0.97)}, {Custom: true, Name: "framework", Op: mlmd.OpNe, Value: v1.String("torch")}}}))
	assert.Empty(t, names(mlmd.Filter{Properties: []mlmd.PropertyPredicate{{Name: "framework", Op: mlmd.OpEq, Value: v1.String("tf")}}}), "framework is a custom property, not a declared one")
	assert.Equal(t, []string{"system.Model/a", "system.Dataset/a"}, names(mlmd.Filter{URI: "s3://m/a"}))
	assert.Equal(t, []string{"system.Model/a", "system.Dataset/a"}, names(mlmd.Filter{Name: "a"}))
	assert.Equal(t, []string{"system.Dataset/a"}, names(mlmd.Filter{Name: "a", TypeName: "system.Dataset"}))

	_, err = r.ListArtifacts(ctx, mlmd.ListRequest{Filter: mlmd.Filter{Properties: []mlmd.PropertyPredicate{{Name: "x", Op: "~", Value: v1.Int(1)}}}})
	assert.ErrorContains(t, err, "filter[0]")
	_, err = r.ListExecutions(ctx, mlmd.ListRequest{Filter: mlmd.Filter{URI: "s3://m/a"}})
	require.ErrorIs(t, err, mlmd.ErrInvalidArgument)
}

func testPagination(t *testing.T, r mlmd.Repo) {
	ctx := t.Context()
	put := func(from, to int) {
		var as []mlmd.Artifact
		for i := from; i < to; i++ {
			as = append(as, mlmd.Artifact{Type: "system.Dataset", Name: fmt.Sprintf("d%03d", i), CustomProperties: map[string]mlmd.Value{"even": v1.Bool(i%2 == 0)}})
		}
		_, err := r.PutArtifacts(ctx, as)
		require.NoError(t, err)
	}
	put(0, 25)
	filter := mlmd.Filter{Properties: []mlmd.PropertyPredicate{{Custom: true, Name: "even", Op: mlmd.OpEq, Value: v1.Bool(true)}}}
	var seen []string
	token := ""
	pages := 0
	for {
		p, err := r.ListArtifacts(ctx, mlmd.ListRequest{Filter: filter, PageSize: 4, PageToken: token})
		require.NoError(t, err)
		pages++
		for _, a := range p.Items {
			seen = append(seen, a.Name)
		}
		if pages == 1 {
			put(25, 31) // inserted while paging: must appear exactly once, later
			_, err := r.ListArtifacts(ctx, mlmd.ListRequest{PageSize: 4, PageToken: p.NextPageToken})
			require.ErrorIs(t, err, mlmd.ErrInvalidArgument, "a token is bound to its filter")
		}
		if p.NextPageToken == "" {
			break
		}
		require.Len(t, p.Items, 4)
		token = p.NextPageToken
	}
	var want []string
	for i := 0; i < 31; i += 2 {
		want = append(want, fmt.Sprintf("d%03d", i))
	}
	assert.Equal(t, want, seen)
	_, err := r.ListArtifacts(ctx, mlmd.ListRequest{PageToken: "!!"})
	require.ErrorIs(t, err, mlmd.ErrInvalidArgument)
	p, err := r.ListArtifacts(ctx, mlmd.ListRequest{})
	require.NoError(t, err)
	assert.Len(t, p.Items, mlmd.DefaultPageSize)
}

func putExecRequest() mlmd.PutExecutionRequest {
	return mlmd.PutExecutionRequest{
		Execution: mlmd.Execution{Type: "system.ContainerExecution", ExternalID: "run-1/train", Name: "run-1/train", LastKnownState: v1.ExecutionComplete,
			CustomProperties: map[string]mlmd.Value{"task_name": v1.String("train")}},
		ArtifactEventPairs: []mlmd.ArtifactAndEvent{
			{Artifact: &mlmd.Artifact{Type: "system.Dataset", ExternalID: "s3://b/in", URI: "s3://b/in", State: v1.ArtifactLive}, Event: &mlmd.Event{Type: v1.EventInput, Path: &v1.EventPath{Steps: []v1.Step{v1.KeyStep("data")}}}},
			{Artifact: &mlmd.Artifact{Type: "system.Model", ExternalID: "s3://b/model", URI: "s3://b/model", State: v1.ArtifactLive}, Event: &mlmd.Event{Type: v1.EventOutput, Path: &v1.EventPath{Steps: []v1.Step{v1.KeyStep("model")}}}},
		},
		Contexts: []mlmd.Context{
			{Type: "system.Pipeline", Name: "quickstart"},
			{Type: "system.PipelineRun", Name: "run-1", CustomProperties: map[string]mlmd.Value{"pipeline_root": v1.String("s3://b/root")}},
		},
	}
}

func testPutExecutionIdempotent(t *testing.T, r mlmd.Repo) {
	ctx := t.Context()
	first, err := r.PutExecution(ctx, putExecRequest())
	require.NoError(t, err)
	second, err := r.PutExecution(ctx, putExecRequest())
	require.NoError(t, err)
	assert.Equal(t, first, second)

	evs, err := r.GetEventsByExecutionIDs(ctx, []int64{first.ExecutionID})
	require.NoError(t, err)
	assert.Len(t, evs, 2)
	arts, err := r.ListArtifacts(ctx, mlmd.ListRequest{Filter: mlmd.Filter{ContextID: first.ContextIDs[1]}})
	require.NoError(t, err)
	assert.Len(t, arts.Items, 2, "both artifacts are attributed to the run")
	execs, err := r.ListExecutions(ctx, mlmd.ListRequest{Filter: mlmd.Filter{ContextID: first.ContextIDs[0]}})
	require.NoError(t, err)
	require.Len(t, execs.Items, 1)
	assert.Equal(t, first.ExecutionID, execs.Items[0].ID)
	all, err := r.ListArtifacts(ctx, mlmd.ListRequest{})
	require.NoError(t, err)
	assert.Len(t, all.Items, 2)
	cs, err := r.ListContexts(ctx, mlmd.ListRequest{})
	require.NoError(t, err)
	assert.Len(t, cs.Items, 2)

	// Re-putting with a new state updates in place; the context keeps its properties.
	req := putExecRequest()
	req.Execution.LastKnownState = v1.ExecutionFailed
	req.Contexts[1].CustomProperties = nil
	third, err := r.PutExecution(ctx, req)
	require.NoError(t, err)
	assert.Equal(t, first, third)
	es, err := r.GetExecutionsByID(ctx, []int64{first.ExecutionID})
	require.NoError(t, err)
	assert.Equal(t, v1.ExecutionFailed, es[0].LastKnownState)
	run, err := r.GetContextsByID(ctx, []int64{first.ContextIDs[1]})
	require.NoError(t, err)
	assert.Equal(t, "s3://b/root", *run[0].CustomProperties["pipeline_root"].StringValue)

	// Atomic: a bad pair aborts the whole request.
	bad := putExecRequest()
	bad.Execution.ExternalID = "run-2/train"
	bad.Execution.Name = "run-2/train"
	bad.ArtifactEventPairs[0].Artifact.ExternalID = "s3://b/in2"
	bad.ArtifactEventPairs[1].Event.ArtifactID = 123456
	_, err = r.PutExecution(ctx, bad)
	require.ErrorIs(t, err, mlmd.ErrInvalidArgument)
	assert.ErrorContains(t, err, "artifact_event_pairs[1].event.artifact_id")
	page, err := r.ListExecutions(ctx, mlmd.ListRequest{Filter: mlmd.Filter{ExternalID: "run-2/train"}})
	require.NoError(t, err)
	assert.Empty(t, page.Items)
	arts2, err := r.ListArtifacts(ctx, mlmd.ListRequest{Filter: mlmd.Filter{ExternalID: "s3://b/in2"}})
	require.NoError(t, err)
	assert.Empty(t, arts2.Items)
}

func testCacheLookup(t *testing.T, r mlmd.Repo) {
	ctx := t.Context()
	put := func(name string, state v1.ExecutionState, fp, pipeline string) int64 {
		res, err := r.PutExecution(ctx, mlmd.PutExecutionRequest{
			Execution: mlmd.Execution{Type: "system.ContainerExecution", Name: name, LastKnownState: state,
				CustomProperties: map[string]mlmd.Value{v1.CacheFingerprintProperty: v1.String(fp)}},
			Contexts: []mlmd.Context{{Type: "system.Pipeline", Name: pipeline}},
		})
		require.NoError(t, err)
		return res.ExecutionID
	}
	put("old", v1.ExecutionComplete, "fp1", "p")
	newest := put("new", v1.ExecutionComplete, "fp1", "p")
	put("running", v1.ExecutionRunning, "fp1", "p")
	put("failed", v1.ExecutionFailed, "fp1", "p")
	other := put("other-pipeline", v1.ExecutionComplete, "fp1", "q")
	put("other-fp", v1.ExecutionComplete, "fp2", "p")

	e, err := r.GetExecutionByFingerprint(ctx, mlmd.CacheQuery{Fingerprint: "fp1", PipelineName: "p"})
	require.NoError(t, err)
	assert.Equal(t, newest, e.ID)
	assert.Equal(t, "fp1", *e.CustomProperties[v1.CacheFingerprintProperty].StringValue)
	e, err = r.GetExecutionByFingerprint(ctx, mlmd.CacheQuery{Fingerprint: "fp1"})
	require.NoError(t, err)
	assert.Equal(t, other, e.ID)
	_, err = r.GetExecutionByFingerprint(ctx, mlmd.CacheQuery{Fingerprint: "nope"})
	require.True(t, errors.Is(err, mlmd.ErrNotFound), "got %v", err)
}

func testContexts(t *testing.T, r mlmd.Repo) {
	ctx := t.Context()
	ids, err := r.PutContexts(ctx, []mlmd.Context{{Type: "system.Pipeline", Name: "p"}, {Type: "system.PipelineRun", Name: "r1"}, {Type: "sluice.Experiment", Name: "e"}})
	require.NoError(t, err)
	require.NoError(t, r.PutParentContexts(ctx, []mlmd.ParentContext{{ChildID: ids[1], ParentID: ids[0]}, {ChildID: ids[0], ParentID: ids[2]}}))
	require.NoError(t, r.PutParentContexts(ctx, []mlmd.ParentContext{{ChildID: ids[1], ParentID: ids[0]}}), "re-linking is a no-op")
	err = r.PutParentContexts(ctx, []mlmd.ParentContext{{ChildID: ids[2], ParentID: ids[1]}})
	require.ErrorIs(t, err, mlmd.ErrInvalidArgument)
	assert.ErrorContains(t, err, "parent_contexts[0]")
	_, err = r.PutContexts(ctx, []mlmd.Context{{Type: "system.Pipeline"}})
	assert.ErrorContains(t, err, "contexts[0].name")

	children, err := r.ListContexts(ctx, mlmd.ListRequest{Filter: mlmd.Filter{ContextID: ids[0]}})
	require.NoError(t, err)
	require.Len(t, children.Items, 1)
	assert.Equal(t, "r1", children.Items[0].Name)

	g := newGraph(t, r)
	g.artifact("in")
	exec := g.step("step", []string{"in"}, []string{"out"})
	require.NoError(t, r.PutAttributionsAndAssociations(ctx, []mlmd.Attribution{{ContextID: ids[1], ArtifactID: g.arts["out"]}}, []mlmd.Association{{ContextID: ids[1], ExecutionID: exec}}))
	require.NoError(t, r.PutAttributionsAndAssociations(ctx, []mlmd.Attribution{{ContextID: ids[1], ArtifactID: g.arts["out"]}}, nil))
	lg, err := r.GetLineageSubgraph(ctx, mlmd.LineageQuery{ArtifactIDs: []int64{g.arts["out"]}, Direction: mlmd.Upstream, MaxHops: 3})
	require.NoError(t, err)
	var names []string
	for _, c := range lg.Contexts {
		names = append(names, c.Name)
	}
	assert.Equal(t, []string{"p", "r1", "e"}, names)
	assert.Equal(t, []mlmd.Attribution{{ContextID: ids[1], ArtifactID: g.arts["out"]}}, lg.Attributions)
	assert.Equal(t, []mlmd.Association{{ContextID: ids[1], ExecutionID: exec}}, lg.Associations)
	assert.ElementsMatch(t, []mlmd.ParentContext{{ChildID: ids[1], ParentID: ids[0]}, {ChildID: ids[0], ParentID: ids[2]}}, lg.ParentContexts)
}

// ingestTask is the record of one event of task "train" of run r1: state, one input (on every
// event) and, when out is set, one output with a digest.
func ingestTask(id string, state v1.ExecutionState, props map[string]mlmd.Value, out bool) mlmd.IngestRequest {
	req := mlmd.IngestRequest{
		Source: "runs/r1", SourceID: id, SourceType: "io.sluice.pipeline.task.x.v1",
		Contexts:       []mlmd.Context{{Type: "system.Pipeline", Name: "p"}, {Type: "system.PipelineRun", Name: "r1"}},
		ParentContexts: []mlmd.ContextLink{{Child: 1, Parent: 0}},
		Execution:      &mlmd.Execution{Type: "system.ContainerExecution", Name: "r1/train", ExternalID: "task:r1/train", LastKnownState: state, CustomProperties: props},
		Artifacts: []mlmd.IngestArtifact{{
			Artifact: mlmd.Artifact{Type: "system.Dataset", URI: "s3://b/in", ExternalID: "s3://b/in", State: v1.ArtifactLive},
			Event:    &mlmd.Event{Type: v1.EventInput, Path: &v1.EventPath{Steps: []v1.Step{v1.KeyStep("data")}}},
		}},
	}
	if out {
		req.Artifacts = append(req.Artifacts, mlmd.IngestArtifact{
			Artifact: mlmd.Artifact{Type: "system.Model", URI: "s3://b/model", ExternalID: "s3://b/model", State: v1.ArtifactLive,
				CustomProperties: map[string]mlmd.Value{"digest": v1.String("sha256:01")}},
			Event: &mlmd.Event{Type: v1.EventOutput, Path: &v1.EventPath{Steps: []v1.Step{v1.KeyStep("model")}}},
		})
	}
	return req
}

type ingestCounts struct{ artifacts, executions, contexts, events, sources int }

func countAll(t *testing.T, r mlmd.Repo) ingestCounts {
	ctx := t.Context()
	var c ingestCounts
	arts, err := r.ListArtifacts(ctx, mlmd.ListRequest{PageSize: mlmd.MaxPageSize})
	require.NoError(t, err)
	execs, err := r.ListExecutions(ctx, mlmd.ListRequest{PageSize: mlmd.MaxPageSize})
	require.NoError(t, err)
	ctxs, err := r.ListContexts(ctx, mlmd.ListRequest{PageSize: mlmd.MaxPageSize})
	require.NoError(t, err)
	var ids []int64
	for _, e := range execs.Items {
		ids = append(ids, e.ID)
	}
	evs, err := r.GetEventsByExecutionIDs(ctx, ids)
	require.NoError(t, err)
	n, err := r.IngestedCount(ctx)
	require.NoError(t, err)
	c.artifacts, c.executions, c.contexts, c.events, c.sources = len(arts.Items), len(execs.Items), len(ctxs.Items), len(evs), int(n)
	return c
}

func testIngest(t *testing.T, r mlmd.Repo) {
	ctx := t.Context()
	// Out of order: the succeeded event arrives first and creates the execution.
	done, err := r.Ingest(ctx, ingestTask("ce-2", v1.ExecutionComplete, map[string]mlmd.Value{"cache_fingerprint": v1.String("fp")}, true))
	require.NoError(t, err)
	require.True(t, done.Applied)
	want := ingestCounts{artifacts: 2, executions: 1, contexts: 2, events: 2, sources: 1}
	assert.Equal(t, want, countAll(t, r))

	again, err := r.Ingest(ctx, ingestTask("ce-2", v1.ExecutionComplete, nil, true))
	require.NoError(t, err)
	assert.False(t, again.Applied, "a source id is applied once")
	assert.Equal(t, want, countAll(t, r))

	// The late started event adds its properties but cannot move COMPLETE back to RUNNING.
	started, err := r.Ingest(ctx, ingestTask("ce-1", v1.ExecutionRunning, map[string]mlmd.Value{"image": v1.String("alpine")}, false))
	require.NoError(t, err)
	require.True(t, started.Applied)
	assert.Equal(t, done.ExecutionID, started.ExecutionID)
	assert.Equal(t, done.ArtifactIDs[0], started.ArtifactIDs[0])
	want.sources = 2
	assert.Equal(t, want, countAll(t, r))
	es, err := r.GetExecutionsByID(ctx, []int64{done.ExecutionID})
	require.NoError(t, err)
	assert.Equal(t, v1.ExecutionComplete, es[0].LastKnownState)
	assert.Equal(t, "fp", *es[0].CustomProperties["cache_fingerprint"].StringValue)
	assert.Equal(t, "alpine", *es[0].CustomProperties["image"].StringValue)
	hit, err := r.GetExecutionByFingerprint(ctx, mlmd.CacheQuery{Fingerprint: "fp", PipelineName: "p"})
	require.NoError(t, err)
	assert.Equal(t, done.ExecutionID, hit.ID)

	// A terminal state is final; an earlier state moves forward.
	_, err = r.Ingest(ctx, ingestTask("ce-3", v1.ExecutionFailed, nil, false))
	require.NoError(t, err)
	es, err = r.GetExecutionsByID(ctx, []int64{done.ExecutionID})
	require.NoError(t, err)
	assert.Equal(t, v1.ExecutionComplete, es[0].LastKnownState)
	other := ingestTask("ce-4", v1.ExecutionNew, nil, false)
	other.Execution.ExternalID, other.Execution.Name = "task:r1/eval", "r1/eval"
	o1, err := r.Ingest(ctx, other)
	require.NoError(t, err)
	other.SourceID, other.Execution.LastKnownState = "ce-5", v1.ExecutionRunning
	_, err = r.Ingest(ctx, other)
	require.NoError(t, err)
	other.SourceID, other.Execution.LastKnownState = "ce-6", v1.ExecutionNew
	_, err = r.Ingest(ctx, other)
	require.NoError(t, err)
	es, err = r.GetExecutionsByID(ctx, []int64{o1.ExecutionID})
	require.NoError(t, err)
	assert.Equal(t, v1.ExecutionRunning, es[0].LastKnownState)

	// Links: run under pipeline, artifacts attributed, executions associated.
	parents, err := r.GetParentContexts(ctx, []int64{done.ContextIDs[1]})
	require.NoError(t, err)
	assert.Equal(t, []mlmd.ParentContext{{ChildID: done.ContextIDs[1], ParentID: done.ContextIDs[0]}}, parents)
	arts, err := r.ListArtifacts(ctx, mlmd.ListRequest{Filter: mlmd.Filter{ContextID: done.ContextIDs[1]}})
	require.NoError(t, err)
	assert.Len(t, arts.Items, 2)
	g, err := r.GetLineageSubgraph(ctx, mlmd.LineageQuery{ArtifactURIs: []string{"s3://b/model"}, Direction: mlmd.Upstream, MaxHops: 5})
	require.NoError(t, err)
	assert.Len(t, g.Artifacts, 2)
	assert.Len(t, g.Executions, 1)
	assert.Len(t, g.Contexts, 2)
}

func testIngestAtomic(t *testing.T, r mlmd.Repo) {
	ctx := t.Context()
	bad := ingestTask("ce-bad", v1.ExecutionComplete, nil, true)
	bad.Artifacts[1].Event.Type = "READ"
	_, err := r.Ingest(ctx, bad)
	require.ErrorIs(t, err, mlmd.ErrInvalidArgument)
	assert.ErrorContains(t, err, "artifacts[1].event.type")
	noExt := ingestTask("ce-bad", v1.ExecutionComplete, nil, true)
	noExt.Artifacts[1].Artifact.ExternalID = ""
	_, err = r.Ingest(ctx, noExt)
	require.ErrorIs(t, err, mlmd.ErrInvalidArgument)
	assert.ErrorContains(t, err, "artifacts[1].artifact.external_id")
	assert.Equal(t, ingestCounts{}, countAll(t, r), "a failed ingest leaves nothing, not even its source id")
	_, err = r.Ingest(ctx, ingestTask("ce-bad", v1.ExecutionComplete, nil, true))
	require.NoError(t, err)
	_, err = r.Ingest(ctx, mlmd.IngestRequest{})
	assert.ErrorContains(t, err, "source_id")
}
