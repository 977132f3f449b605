package access_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sluice-ml/sluice/services/notebooks/internal/access"
)

func TestTokensCheck(t *testing.T) {
	toks, err := access.ParseTokens("aaaaaaaaaaaaaaaa=team-a,team-b; bbbbbbbbbbbbbbbb=*")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		tok, ns string
		want    int
	}{
		{"aaaaaaaaaaaaaaaa", "team-a", 200},
		{"aaaaaaaaaaaaaaaa", "team-b", 200},
		{"aaaaaaaaaaaaaaaa", "team-c", 403},
		{"bbbbbbbbbbbbbbbb", "anything", 200},
		{"cccccccccccccccc", "team-a", 401},
		{"", "team-a", 401},
	}
	for _, tc := range cases {
		if got := toks.Check(tc.tok, tc.ns); got != tc.want {
			t.Errorf("Check(%q, %q) = %d, want %d", tc.tok, tc.ns, got, tc.want)
		}
	}
}

func TestParseTokensErrors(t *testing.T) {
	for _, bad := range []string{"short=ns", "noequalsign", "aaaaaaaaaaaaaaaa=", "bad token with spaces=*"} {
		if _, err := access.ParseTokens(bad); err == nil {
			t.Errorf("ParseTokens(%q) accepted", bad)
		}
	}
}

func TestPresented(t *testing.T) {
	r := httptest.NewRequest("GET", "/notebook/a/b/?token=q", nil)
	if tok, from := access.Presented(r); tok != "q" || from != "query" {
		t.Errorf("query: %q %q", tok, from)
	}
	r.Header.Set("Authorization", "Bearer h")
	if tok, from := access.Presented(r); tok != "h" || from != "header" {
		t.Errorf("header: %q %q", tok, from)
	}
	r = httptest.NewRequest("GET", "/notebook/a/b/", nil)
	r.AddCookie(&http.Cookie{Name: access.CookieName, Value: "c"})
	if tok, from := access.Presented(r); tok != "c" || from != "cookie" {
		t.Errorf("cookie: %q %q", tok, from)
	}
}
