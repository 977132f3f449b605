package artifacts_test

import (
	"strings"
	"testing"

	"github.com/sluice-ml/sluice/libs/artifacts"
)

func TestParseURI(t *testing.T) {
	t.Parallel()
	ok := []struct{ uri, bucket, key string }{
		{"s3://sluice/runs/r1/model.bin", "sluice", "runs/r1/model.bin"},
		{"s3://sluice/runs/r1/", "sluice", "runs/r1"},
		{"s3://sluice", "sluice", ""},
		{"s3://sluice/", "sluice", ""},
	}
	for _, tc := range ok {
		b, k, err := artifacts.ParseURI(tc.uri)
		if err != nil || b != tc.bucket || k != tc.key {
			t.Errorf("ParseURI(%q) = %q, %q, %v; want %q, %q", tc.uri, b, k, err, tc.bucket, tc.key)
		}
		if tc.key != "" && artifacts.FormatURI(b, k) != strings.TrimSuffix(tc.uri, "/") {
			t.Errorf("FormatURI(%q, %q) does not round-trip %q", b, k, tc.uri)
		}
	}
	bad := map[string]string{
		"http://sluice/a":    "scheme must be s3://",
		"sluice/a":           "scheme must be s3://",
		"s3:///a":            "bucket",
		"s3://Bad_Bucket/a":  "bucket",
		"s3://sluice/a/../b": `unsafe key "a/../b": ".." segment`,
		"s3://sluice//etc":   `unsafe key "/etc": absolute path`,
	}
	for uri, want := range bad {
		_, _, err := artifacts.ParseURI(uri)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), uri) {
			t.Errorf("ParseURI(%q): err = %v, want one naming the uri and containing %q", uri, err, want)
		}
	}
}

func TestSubAndURIs(t *testing.T) {
	t.Parallel()
	root, err := artifacts.New(artifacts.Config{Endpoint: "http://127.0.0.1:1", AccessKey: "a", SecretKey: "s", Bucket: "sluice"})
	if err != nil {
		t.Fatal(err)
	}
	run, err := root.Sub("pipelines/runs/r1")
	if err != nil {
		t.Fatal(err)
	}
	step, err := run.Sub("steps/train")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := step.Prefix(), "pipelines/runs/r1/steps/train"; got != want {
		t.Errorf("Prefix = %q, want %q", got, want)
	}
	uri := step.URI("model/saved_model.pb")
	if want := "s3://sluice/pipelines/runs/r1/steps/train/model/saved_model.pb"; uri != want {
		t.Errorf("URI = %q, want %q", uri, want)
	}
	for st, want := range map[*artifacts.Store]string{
		root: "pipelines/runs/r1/steps/train/model/saved_model.pb",
		run:  "steps/train/model/saved_model.pb",
		step: "model/saved_model.pb",
	} {
		got, err := st.KeyOf(uri)
		if err != nil || got != want {
			t.Errorf("%q.KeyOf = %q, %v; want %q", st.Prefix(), got, err, want)
		}
	}
	other, _ := root.Sub("pipelines/runs/r2")
	if _, err := other.KeyOf(uri); err == nil || !strings.Contains(err.Error(), "outside prefix") {
		t.Errorf("KeyOf outside the prefix: err = %v", err)
	}
	if _, err := root.KeyOf("s3://other/x"); err == nil || !strings.Contains(err.Error(), "bucket") {
		t.Errorf("KeyOf of another bucket: err = %v", err)
	}
	// r1 must not match r10.
	r10, _ := root.Sub("pipelines/runs/r10")
	if _, err := run.KeyOf(r10.URI("x")); err == nil {
		t.Error("r1 store accepted a URI under r10")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	valid := artifacts.Config{Endpoint: "127.0.0.1:9000", AccessKey: "a", SecretKey: "s", Bucket: "sluice"}
	if err := valid.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	cases := map[string]struct {
		mut  func(*artifacts.Config)
		want []string
	}{
		"all missing": {func(c *artifacts.Config) { *c = artifacts.Config{} }, []string{
			"artifacts: config: Endpoint: required", "AccessKey: required", "SecretKey: required", "Bucket: required"}},
		"bad bucket":      {func(c *artifacts.Config) { c.Bucket = "UPPER" }, []string{"Bucket: "}},
		"bad scheme":      {func(c *artifacts.Config) { c.Endpoint = "ftp://h:1" }, []string{"Endpoint: ", "scheme must be http or https"}},
		"endpoint path":   {func(c *artifacts.Config) { c.Endpoint = "http://h:1/x" }, []string{"Endpoint: ", "path"}},
		"http and secure": {func(c *artifacts.Config) { c.Endpoint = "http://h:1"; c.Secure = true }, []string{"Endpoint: ", "Secure"}},
		"part size":       {func(c *artifacts.Config) { c.PartSize = 1024 }, []string{"PartSize: must be 0 or at least 5 MiB"}},
	}
	for name, tc := range cases {
		c := valid
		tc.mut(&c)
		err := c.Validate()
		if err == nil {
			t.Errorf("%s: Validate() = nil", name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not contain %q", name, err, w)
			}
		}
		if _, nerr := artifacts.New(c); nerr == nil {
			t.Errorf("%s: New accepted an invalid config", name)
		}
	}
	for _, ep := range []string{"http://127.0.0.1:9000", "https://s3.amazonaws.com", "minio:9000"} {
		c := valid
		c.Endpoint = ep
		if err := c.Validate(); err != nil {
			t.Errorf("Endpoint %q: %v", ep, err)
		}
	}
}
