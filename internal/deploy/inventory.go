package deploy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Inventory is the set of objects stack deployed to a cluster for an
// environment: what a later deploy prunes when it no longer renders them.
// It is kept in the cluster (a ConfigMap, InventoryNamespace/stack-ENV) and
// in the state repo (_stack/inventory), one object a line:
//
//	apps/v1 Deployment health health
//	v1 Namespace - health
type Inventory []Key

// InventoryNamespace holds the inventory ConfigMaps: a namespace every
// cluster has.
const InventoryNamespace = "kube-system"

// inventoryKey is the ConfigMap's data key.
const inventoryKey = "inventory"

// InventoryName is the name of env's inventory ConfigMap.
func InventoryName(env string) string { return "stack-" + env }

var (
	inventoryWord = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
	inventoryName = regexp.MustCompile(`^[a-z0-9]([a-z0-9.:-]*[a-z0-9])?$`)
)

// ParseInventory reads the text form of an inventory; file names it in
// errors.
func ParseInventory(file string, data []byte) (Inventory, error) {
	var inv Inventory
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 4 {
			return nil, fmt.Errorf("%s:%d: want `APIVERSION KIND NAMESPACE NAME` (NAMESPACE - for a cluster-scoped object)", file, n)
		}
		k := Key{APIVersion: f[0], Kind: f[1], Namespace: f[2], Name: f[3]}
		if k.Namespace == "-" {
			k.Namespace = ""
		}
		if !inventoryWord.MatchString(k.APIVersion) || strings.Count(k.APIVersion, "/") > 1 || !inventoryWord.MatchString(k.Kind) || strings.Contains(k.Kind, "/") ||
			(k.Namespace != "" && !inventoryName.MatchString(k.Namespace)) || !inventoryName.MatchString(k.Name) {
			return nil, fmt.Errorf("%s:%d: %q is not an object", file, n, line)
		}
		if seen[k.ID()] {
			return nil, fmt.Errorf("%s:%d: %s listed twice", file, n, k)
		}
		seen[k.ID()] = true
		inv = append(inv, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	inv.sort()
	return inv, nil
}

// Bytes is the text form, sorted.
func (inv Inventory) Bytes() []byte {
	inv = append(Inventory(nil), inv...)
	inv.sort()
	var b bytes.Buffer
	for _, k := range inv {
		ns := k.Namespace
		if ns == "" {
			ns = "-"
		}
		fmt.Fprintf(&b, "%s %s %s %s\n", k.APIVersion, k.Kind, ns, k.Name)
	}
	return b.Bytes()
}

func (inv Inventory) sort() {
	sort.Slice(inv, func(i, j int) bool { return inv[i].ID() < inv[j].ID() })
}

// InventoryOf lists objs.
func InventoryOf(objs []*unstructured.Unstructured) Inventory {
	inv := make(Inventory, 0, len(objs))
	for _, u := range objs {
		inv = append(inv, KeyOf(u))
	}
	inv.sort()
	return inv
}

// Union is every object of inv and other, other's API version winning.
func (inv Inventory) Union(other Inventory) Inventory {
	m := map[string]Key{}
	for _, k := range inv {
		m[k.ID()] = k
	}
	for _, k := range other {
		m[k.ID()] = k
	}
	out := make(Inventory, 0, len(m))
	for _, k := range m {
		out = append(out, k)
	}
	out.sort()
	return out
}

// Minus is the objects of inv not in other.
func (inv Inventory) Minus(other Inventory) Inventory {
	m := map[string]bool{}
	for _, k := range other {
		m[k.ID()] = true
	}
	var out Inventory
	for _, k := range inv {
		if !m[k.ID()] {
			out = append(out, k)
		}
	}
	return out
}

// readInventory returns env's inventory kept in the cluster; nil when
// there is none.
func (c *Cluster) readInventory(ctx context.Context, env string) (Inventory, error) {
	var cm corev1.ConfigMap
	err := c.Client.Get(ctx, client.ObjectKey{Namespace: InventoryNamespace, Name: InventoryName(env)}, &cm)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the inventory %s/%s: %w", InventoryNamespace, InventoryName(env), err)
	}
	return ParseInventory("configmap "+InventoryNamespace+"/"+InventoryName(env), []byte(cm.Data[inventoryKey]))
}

// writeInventory applies env's inventory ConfigMap.
func (c *Cluster) writeInventory(ctx context.Context, env string, inv Inventory) error {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{
			"name": InventoryName(env), "namespace": InventoryNamespace,
			"labels": map[string]any{"app.kubernetes.io/managed-by": FieldManager},
		},
		"data": map[string]any{inventoryKey: string(inv.Bytes())},
	}}
	err := c.Client.Patch(ctx, u, client.Apply, client.FieldOwner(FieldManager+"-inventory"), client.ForceOwnership)
	if err != nil {
		return fmt.Errorf("write the inventory %s/%s: %w", InventoryNamespace, InventoryName(env), err)
	}
	return nil
}
