package examples_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// excerptMark precedes each code block of docs/guides that is taken from
// an example: <!-- excerpt: examples/NAME/FILE -->.
var excerptMark = regexp.MustCompile(`^<!-- excerpt: (\S+) -->$`)

// TestGuideCodeIsFromTheExamples keeps the code of the guides compiling:
// every Go block must be an excerpt of an example's file, which the build
// compiles and the tests run, and every block marked as an excerpt (YAML
// ones too) must match its file. A line "// ..." (or "# ..." in YAML)
// stands for lines left out; leading whitespace and blank lines are not
// compared.
func TestGuideCodeIsFromTheExamples(t *testing.T) {
	guides, err := filepath.Glob("../docs/guides/*.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(guides) < 6 {
		t.Fatalf("found %d guides, want 6", len(guides))
	}
	for _, g := range guides {
		data, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		for i := 0; i < len(lines); i++ {
			lang, ok := strings.CutPrefix(lines[i], "```")
			if !ok || lang == "" {
				continue
			}
			start := i
			var block []string
			for i++; i < len(lines) && lines[i] != "```"; i++ {
				block = append(block, lines[i])
			}
			src := ""
			if start > 0 {
				if m := excerptMark.FindStringSubmatch(lines[start-1]); m != nil {
					src = m[1]
				}
			}
			switch {
			case src != "":
				checkExcerpt(t, g, start+1, src, block)
			case lang == "go":
				t.Errorf("%s:%d: a Go block without an <!-- excerpt: examples/... --> mark", g, start+1)
			}
		}
	}
}

func checkExcerpt(t *testing.T, guide string, line int, src string, block []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", src))
	if err != nil {
		t.Errorf("%s:%d: %v", guide, line, err)
		return
	}
	file := normalize(strings.Split(string(data), "\n"))
	// The chunks between elisions appear in the file, in order.
	var chunks [][]string
	cur := []string{}
	for _, l := range normalize(block) {
		if l == "// ..." || l == "# ..." {
			chunks = append(chunks, cur)
			cur = []string{}
			continue
		}
		cur = append(cur, l)
	}
	chunks = append(chunks, cur)
	pos := 0
	for _, c := range chunks {
		if len(c) == 0 {
			continue
		}
		at := find(file[pos:], c)
		if at < 0 {
			t.Errorf("%s:%d: the block is not an excerpt of %s; this part differs:\n%s", guide, line, src, strings.Join(c, "\n"))
			return
		}
		pos += at + len(c)
	}
}

// normalize trims leading and trailing space and drops blank lines.
func normalize(lines []string) []string {
	var out []string
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// find returns the index of the first occurrence of sub in s, or -1.
func find(s, sub []string) int {
outer:
	for i := 0; i+len(sub) <= len(s); i++ {
		for j := range sub {
			if s[i+j] != sub[j] {
				continue outer
			}
		}
		return i
	}
	return -1
}
