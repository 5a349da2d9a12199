package examples_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mailwire/mailwire/config"

	// The examples' own mechanism and middleware, which their files name.
	_ "github.com/mailwire/mailwire/examples/custom-auth/demotoken"
	_ "github.com/mailwire/mailwire/examples/custom-middleware/stamp"
)

var envKey = regexp.MustCompile(`_env:\s*([A-Za-z_][A-Za-z0-9_]*)`)

// Every configuration file of the examples loads, and every profile in it
// builds, with the secrets it names set to dummies.
func TestEveryConfigLoadsAndBuilds(t *testing.T) {
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml") || strings.HasSuffix(path, ".json")) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 7 {
		t.Fatalf("found only %d configuration files: %v", len(files), files)
	}
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range envKey.FindAllStringSubmatch(string(data), -1) {
				t.Setenv(m[1], "dummy-secret")
			}
			cfg, err := config.Load(file)
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Profiles()) == 0 {
				t.Fatal("no profiles")
			}
			if cfg.Default() == "" {
				t.Error("no default profile")
			} else if _, err := cfg.Transport(""); err != nil {
				t.Errorf("default profile: %v", err)
			}
			for _, p := range cfg.Profiles() {
				if _, err := cfg.Transport(p); err != nil {
					t.Errorf("profile %s: %v", p, err)
				}
			}
		})
	}
}

// Every example is a program with a README and a test that runs it.
func TestEveryExampleHasReadmeAndTest(t *testing.T) {
	mains, err := filepath.Glob("*/main.go")
	if err != nil {
		t.Fatal(err)
	}
	if len(mains) < 8 {
		t.Errorf("found %d examples, want at least 8: %v", len(mains), mains)
	}
	for _, m := range mains {
		dir := filepath.Dir(m)
		for _, f := range []string{"README.md", "main_test.go"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("example %s has no %s", dir, f)
			}
		}
		src, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(src), "go run ./examples/"+dir) {
			t.Errorf("the doc comment of %s does not say how to run it (go run ./examples/%s)", m, dir)
		}
	}
}
