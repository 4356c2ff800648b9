package deploy

import (
	"errors"
	"fmt"
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

// conflictsOf lists the fields of a server-side apply conflict with the
// managers that own them: ".spec.replicas (owned by kubectl-edit)".
func conflictsOf(err error) []string {
	if err == nil || !apierrors.IsConflict(err) {
		return nil
	}
	var st apierrors.APIStatus
	if !errors.As(err, &st) || st.Status().Details == nil {
		return nil
	}
	var out []string
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
		out = append(out, fmt.Sprintf("%s is owned by %s", c.Field, who))
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
