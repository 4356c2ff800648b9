// The import graph of the tool, held against internal/imports.txt: a
// reviewed list of which package may import which. A new edge (a stage
// reaching into another it should not know) fails the tests until the
// list says it is meant, in review, as tailscale's depaware does.
package stack_test

import (
	"bufio"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/hashbang/stack/"

// importsFile is the committed list, `PACKAGE: IMPORT IMPORT...` a line,
// packages and imports relative to the module, every package of the
// module listed (with nothing after the colon when it imports none).
const importsFile = "internal/imports.txt"

func TestImportGraph(t *testing.T) {
	got := importGraph(t)
	want, err := readImports(importsFile)
	if err != nil {
		t.Fatal(err)
	}
	var problems []string
	for pkg, deps := range got {
		allowed, listed := want[pkg]
		if !listed {
			problems = append(problems, fmt.Sprintf("package %s is not in %s: add the line %q", pkg, importsFile, pkg+": "+strings.Join(deps, " ")))
			continue
		}
		for _, d := range deps {
			if !slices.Contains(allowed, d) {
				problems = append(problems, fmt.Sprintf("%s imports %s, which %s does not allow: remove the import, or add it to the line of %s if review agrees", pkg, d, importsFile, pkg))
			}
		}
		for _, d := range allowed {
			if !slices.Contains(deps, d) {
				problems = append(problems, fmt.Sprintf("%s no longer imports %s: remove it from the line of %s in %s", pkg, d, pkg, importsFile))
			}
		}
	}
	for pkg := range want {
		if _, ok := got[pkg]; !ok {
			problems = append(problems, fmt.Sprintf("%s lists package %s, which does not exist: remove its line", importsFile, pkg))
		}
	}
	sort.Strings(problems)
	for _, p := range problems {
		t.Error(p)
	}
}

// importGraph is each package of the module (under cmd/ and internal/)
// with the module's packages it imports, not counting its tests, sorted.
// It parses the files itself, rather than asking go list, so that the
// test cache knows what the result depends on.
func importGraph(t *testing.T) map[string][]string {
	graph := map[string][]string{}
	for _, top := range []string{"cmd", "internal"} {
		err := filepath.WalkDir(top, func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			pkg := filepath.ToSlash(filepath.Dir(path))
			deps := graph[pkg]
			if deps == nil {
				deps = []string{}
			}
			for _, imp := range f.Imports {
				if d, ok := strings.CutPrefix(strings.Trim(imp.Path.Value, `"`), module); ok && !slices.Contains(deps, d) {
					deps = append(deps, d)
				}
			}
			graph[pkg] = deps
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, deps := range graph {
		sort.Strings(deps)
	}
	return graph
}

func readImports(file string) (map[string][]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	want := map[string][]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pkg, deps, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want PACKAGE: IMPORT..., got %q", file, n, line)
		}
		if _, dup := want[pkg]; dup {
			return nil, fmt.Errorf("%s:%d: package %s is listed twice: keep one line", file, n, pkg)
		}
		want[pkg] = strings.Fields(deps)
	}
	return want, sc.Err()
}
