package deploy

import (
	"context"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CaptureManager is the field manager that stores captured values: stack's
// own applies (field manager "stack") do not set those keys, so they never
// remove them.
const CaptureManager = "stack-capture"

// Exec runs command in a container of a pod and returns what it wrote to
// its standard output. Its error must not hold that output (it may be the
// secret): the command's standard error is fine.
type Exec func(ctx context.Context, namespace, pod, container string, command []string) (stdout []byte, err error)

// Capture runs the capture step d declares, when the live Secret lacks its
// key: the command in a ready pod of the workload, through exec, and what
// its match finds is stored under the key. It says whether it stored a
// value; a key the Secret has is never captured again.
func (c *Cluster) Capture(ctx context.Context, d *SecretDecl, exec Exec) (bool, error) {
	cp := d.Capture
	if cp == nil {
		return false, nil
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: capture %s: %s", d.Secret, cp.Key, fmt.Sprintf(format, args...))
	}
	data, err := c.SecretData(ctx, d.Secret)
	if err != nil {
		return false, err
	}
	if data == nil {
		return false, fail("the Secret does not exist: deploy it first")
	}
	if _, ok := data[cp.Key]; ok {
		return false, nil
	}
	pod, err := c.readyPod(ctx, d.Secret.Namespace, cp)
	if err != nil {
		return false, fail("%v", err)
	}
	out, err := exec(ctx, d.Secret.Namespace, pod, cp.Container, cp.Command)
	if err != nil {
		msg := fmt.Sprintf("%s in pod %s/%s: %s", strings.Join(cp.Command, " "), d.Secret.Namespace, pod, foldLines(err.Error()))
		if cp.Help != "" {
			msg += ": " + foldLines(cp.Help)
		}
		return false, fail("%s", msg)
	}
	v := cp.Find(out)
	if v == nil {
		return false, fail("the output of %s in pod %s/%s does not match %q (it is not shown: it may hold the secret)", strings.Join(cp.Command, " "), d.Secret.Namespace, pod, cp.Match)
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": d.Secret.Name, "namespace": d.Secret.Namespace},
		"data":     map[string]any{cp.Key: base64.StdEncoding.EncodeToString(v)},
	}}
	if err := c.Client.Patch(ctx, u, client.Apply, client.FieldOwner(CaptureManager)); err != nil {
		return false, fail("store it: %s", apiMessage(err))
	}
	return true, nil
}

// readyPod names a pod of cp's workload in ns that is running, ready and
// has cp's container; the first by name when several are.
func (c *Cluster) readyPod(ctx context.Context, ns string, cp *Capture) (string, error) {
	w := &unstructured.Unstructured{}
	w.SetAPIVersion("apps/v1")
	w.SetKind(cp.WorkloadKind)
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: cp.WorkloadName}, w); err != nil {
		return "", fmt.Errorf("read %s %s/%s: %s: is it in the environment's manifests?", strings.ToLower(cp.WorkloadKind), ns, cp.WorkloadName, apiMessage(err))
	}
	sel := &metav1.LabelSelector{}
	m, _, _ := unstructured.NestedMap(w.Object, "spec", "selector")
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, sel); err != nil {
		return "", fmt.Errorf("%s %s/%s: selector: %w", strings.ToLower(cp.WorkloadKind), ns, cp.WorkloadName, err)
	}
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return "", fmt.Errorf("%s %s/%s: selector: %w", strings.ToLower(cp.WorkloadKind), ns, cp.WorkloadName, err)
	}
	pods := &unstructured.UnstructuredList{}
	pods.SetAPIVersion("v1")
	pods.SetKind("PodList")
	if err := c.Client.List(ctx, pods, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return "", fmt.Errorf("list the pods of %s %s/%s: %s", strings.ToLower(cp.WorkloadKind), ns, cp.WorkloadName, apiMessage(err))
	}
	var ready []string
	for _, p := range pods.Items {
		if p.GetDeletionTimestamp() == nil && podReady(&p) && hasContainer(&p, cp.Container) {
			ready = append(ready, p.GetName())
		}
	}
	if len(ready) == 0 {
		return "", fmt.Errorf("no pod of %s %s/%s with container %s is running and ready: is it (kubectl -n %s get pods)?", strings.ToLower(cp.WorkloadKind), ns, cp.WorkloadName, cp.Container, ns)
	}
	sort.Strings(ready)
	return ready[0], nil
}

func podReady(p *unstructured.Unstructured) bool {
	if phase, _, _ := unstructured.NestedString(p.Object, "status", "phase"); phase != "Running" {
		return false
	}
	conds, _, _ := unstructured.NestedSlice(p.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Ready" && m["status"] == "True" {
			return true
		}
	}
	return false
}

func hasContainer(p *unstructured.Unstructured, name string) bool {
	cs, _, _ := unstructured.NestedSlice(p.Object, "spec", "containers")
	for _, c := range cs {
		if m, ok := c.(map[string]any); ok && m["name"] == name {
			return true
		}
	}
	return false
}

// SecretData reads the live Secret k's data, decoded; nil when it does not
// exist.
func (c *Cluster) SecretData(ctx context.Context, k Key) (map[string][]byte, error) {
	u, err := c.get(ctx, Key{APIVersion: "v1", Kind: "Secret", Namespace: k.Namespace, Name: k.Name})
	if err != nil || u == nil {
		return nil, err
	}
	m, _, _ := unstructured.NestedMap(u.Object, "data")
	out := make(map[string][]byte, len(m))
	for key, v := range m {
		s, _ := v.(string)
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%s: key %s is not base64: %w", k, key, err)
		}
		out[key] = b
	}
	return out, nil
}
