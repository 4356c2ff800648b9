package deploy

import (
	"errors"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// appliedBy tells whether manager has applied (server-side) fields of u.
func appliedBy(u *unstructured.Unstructured, manager string) bool {
	for _, mf := range u.GetManagedFields() {
		if mf.Manager == manager && mf.Operation == metav1.ManagedFieldsOperationApply {
			return true
		}
	}
	return false
}

// A conflict is a field of a server-side apply conflict and the manager
// that owns it.
type conflict struct{ field, manager string }

func (c conflict) String() string { return c.field + " is owned by " + c.manager }

// KubectlManagers are the field managers of kubectl's everyday edits
// (`kubectl scale`, `kubectl edit`, client-side `kubectl apply`, and what
// an object had before its first server-side apply). In an unprotected
// environment a deploy takes their fields back, as Flux does, instead of
// stopping; a targeted `kubectl patch` (kubectl-patch) or any other
// manager still stops it.
var KubectlManagers = []string{"kubectl", "kubectl-edit", "kubectl-client-side-apply", "before-first-apply"}

// conflictsOf lists the fields of a server-side apply conflict with the
// managers that own them.
func conflictsOf(err error) []conflict {
	if err == nil || !apierrors.IsConflict(err) {
		return nil
	}
	var st apierrors.APIStatus
	if !errors.As(err, &st) || st.Status().Details == nil {
		return nil
	}
	var out []conflict
	for _, c := range st.Status().Details.Causes {
		if c.Type != metav1.CauseTypeFieldManagerConflict {
			continue
		}
		who := c.Message
		if i := strings.Index(who, `"`); i >= 0 {
			if j := strings.Index(who[i+1:], `"`); j >= 0 {
				who = who[i+1 : i+1+j]
			}
		}
		out = append(out, conflict{field: c.Field, manager: who})
	}
	return out
}

// isImmutable tells an API error refusing a change to an immutable field.
func isImmutable(err error) bool {
	return apierrors.IsInvalid(err) && strings.Contains(err.Error(), "immutable")
}

// apiMessage is an API error's message on one line.
func apiMessage(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// joinConflicts is conflicts as one phrase.
func joinConflicts(cs []conflict) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = c.String()
	}
	return strings.Join(s, "; ")
}
