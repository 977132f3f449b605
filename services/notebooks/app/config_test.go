package app_test

import (
	"strings"
	"testing"

	"github.com/sluice-ml/sluice/services/notebooks/app"
)

func TestConfigWarmPool(t *testing.T) {
	for _, tc := range []struct {
		val  string
		want int
		err  bool
	}{{"", 2, false}, {"0", 0, false}, {"10", 10, false}, {"-1", 0, true}, {"many", 0, true}, {"257", 0, true}} {
		c, err := app.ConfigFromEnv(func(k string) string {
			if k == "SLUICE_NOTEBOOKS_WARM_POOL" {
				return tc.val
			}
			return ""
		})
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), "SLUICE_NOTEBOOKS_WARM_POOL") {
				t.Errorf("%q: error %v, want one naming SLUICE_NOTEBOOKS_WARM_POOL", tc.val, err)
			}
			continue
		}
		if err != nil || c.WarmPool != tc.want {
			t.Errorf("%q: WarmPool %d %v, want %d", tc.val, c.WarmPool, err, tc.want)
		}
	}
}
