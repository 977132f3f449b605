package app

import (
	"os"
	"path/filepath"
	"testing"
)

// The objects key is made on first start inside <data>/pipelines, which per-namespace Unix users must
// traverse to reach their work dirs: the directory is 0711, the key file 0600.
func TestObjectsKeyDirIsTraversable(t *testing.T) {
	data := t.TempDir()
	if _, err := objectsKey(func(string) string { return "" }, data); err != nil {
		t.Fatal(err)
	}
	dir, err := os.Stat(filepath.Join(data, Name))
	if err != nil {
		t.Fatal(err)
	}
	if dir.Mode().Perm()&0o001 == 0 {
		t.Fatalf("%s is %v: others cannot traverse it", dir.Name(), dir.Mode().Perm())
	}
	key, err := os.Stat(filepath.Join(data, Name, "objects.key"))
	if err != nil {
		t.Fatal(err)
	}
	if key.Mode().Perm() != 0o600 {
		t.Fatalf("objects.key is %v, want 0600", key.Mode().Perm())
	}
	if _, err := objectsKey(func(string) string { return "" }, data); err != nil { // read back on a restart
		t.Fatal(err)
	}
}
