package app_test

import (
	"encoding/base64"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/pipelines/app"
)

// Secrets and config maps of a namespace (Kubernetes-shaped): a secret's list shows names and keys but
// no values, its get returns data as base64 (stringData merged in); bad names, keys and base64 are 400s
// naming the field; a taken name is 409; another namespace's owner is refused; delete then get is 404.
func TestSecretsAndConfigMapsAPI(t *testing.T) {
	f := newNSFixture(t)
	base := "/apis/v1/namespaces/" + f.a
	f.must("contributor", "POST", base+"/secrets", map[string]any{"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": "db"}, "data": map[string]any{"password": base64.StdEncoding.EncodeToString([]byte("pa55"))},
		"stringData": map[string]any{"user": "alice"}}, 201, nil)
	f.must("contributor", "POST", base+"/secrets", map[string]any{"metadata": map[string]any{"name": "db"}}, 409, nil)

	var list app.ObjectList
	f.must("viewer", "GET", base+"/secrets", nil, 200, &list)
	require.Equal(t, "SecretList", list.Kind)
	require.Len(t, list.Items, 1)
	require.Equal(t, []string{"password", "user"}, list.Items[0].Keys)
	require.Empty(t, list.Items[0].Data, "a list never carries secret values")
	code, body := f.do("viewer", "GET", base+"/secrets/db", nil)
	require.Equal(t, 403, code, "a viewer may not read a secret's values: %s", body)
	require.NotContains(t, body, "pa55")

	var got app.ObjectBody
	f.must("contributor", "GET", base+"/secrets/db", nil, 200, &got)
	require.Equal(t, map[string]string{"password": base64.StdEncoding.EncodeToString([]byte("pa55")), "user": base64.StdEncoding.EncodeToString([]byte("alice"))}, got.Data)
	require.Equal(t, "Opaque", got.Type)

	code, body = f.do("other namespace's owner", "GET", base+"/secrets", nil)
	require.Equal(t, 403, code, body)

	for _, bad := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"metadata": map[string]any{"name": "Bad_Name"}}, "metadata.name"},
		{map[string]any{"metadata": map[string]any{"name": "x"}, "data": map[string]any{"k": "%%%"}}, "data.k"},
		{map[string]any{"metadata": map[string]any{"name": "x"}, "stringData": map[string]any{"a/b": "v"}}, "stringData.a/b"},
		{map[string]any{"metadata": map[string]any{"name": "x", "namespace": f.b}}, "metadata.namespace"},
		{map[string]any{"kind": "ConfigMap", "metadata": map[string]any{"name": "x"}}, "kind"},
	} {
		code, body := f.do("contributor", "POST", base+"/secrets", bad.body)
		require.Equal(t, 400, code, body)
		require.Contains(t, body, bad.field)
	}

	f.must("contributor", "POST", base+"/configmaps", map[string]any{"metadata": map[string]any{"name": "settings"},
		"data": map[string]any{"mode": "fast"}}, 201, nil)
	f.must("viewer", "GET", base+"/configmaps", nil, 200, &list)
	require.Equal(t, "ConfigMapList", list.Kind)
	require.Equal(t, map[string]string{"mode": "fast"}, list.Items[0].Data)
	f.must("viewer", "GET", base+"/configmaps/settings", nil, 200, &got)
	require.Equal(t, "fast", got.Data["mode"])

	f.must("contributor", "DELETE", base+"/secrets/db", nil, 204, nil)
	f.must("contributor", "GET", base+"/secrets/db", nil, 404, nil)
	f.must("contributor", "DELETE", base+"/configmaps/settings", nil, 204, nil)
	f.must("viewer", "GET", base+"/configmaps/settings", nil, 404, nil)
}
