package gitserve

import (
	"strings"
	"testing"
)

// TestAccessDuplicateKeys: a key given twice in git.yaml is refused at any
// depth, naming both lines.
func TestAccessDuplicateKeys(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"repos:\n  \"*\": {read: [x]}\nrepos:\n  stack: {read: [y]}\n", `git.yaml:3: duplicate key "repos" in the top level (first at line 1)`},
		{"repos:\n  stack:\n    read: [x]\n    write: [y]\n    read: [z]\n", `git.yaml:5: duplicate key "read" in repos.stack (first at line 3)`},
	} {
		if _, err := ParseAccess([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseAccess(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}
