package deploy

import (
	"context"
	"fmt"
	"strings"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"
)

// liveFiles reads the live objects of inv, cleaned, as state repo files;
// those in known (by Key.ID) were just read and are taken from there.
// Objects that do not exist are left out.
func (c *Cluster) liveFiles(ctx context.Context, inv Inventory, known map[string]*unstructured.Unstructured) (map[string][]byte, error) {
	files := map[string][]byte{}
	var unknown Inventory
	for _, k := range inv {
		if _, ok := known[k.ID()]; !ok {
			unknown = append(unknown, k)
		}
	}
	all, err := c.getAll(ctx, unknown)
	if err != nil {
		return nil, err
	}
	for id, u := range known {
		all[id] = u
	}
	for _, k := range inv {
		live := all[k.ID()]
		if live == nil {
			continue
		}
		data, err := sigsyaml.Marshal(Clean(live).Object)
		if err != nil {
			return nil, err
		}
		files[k.Path()] = data
	}
	return files, nil
}

// concurrency is how many requests a deploy has in flight at once.
const concurrency = 8

// getAll reads the live objects of keys concurrently, by Key.ID; absent
// objects map to nil.
func (c *Cluster) getAll(ctx context.Context, keys []Key) (map[string]*unstructured.Unstructured, error) {
	objs := make([]*unstructured.Unstructured, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for i, k := range keys {
		g.Go(func() error {
			u, err := c.get(gctx, k)
			objs[i] = u
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make(map[string]*unstructured.Unstructured, len(keys))
	for i, k := range keys {
		out[k.ID()] = objs[i]
	}
	return out, nil
}

// get reads the live object k; nil when it does not exist.
func (c *Cluster) get(ctx context.Context, k Key) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(k.APIVersion)
	u.SetKind(k.Kind)
	err := c.Client.Get(ctx, client.ObjectKey{Namespace: k.Namespace, Name: k.Name}, u)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil && strings.Contains(err.Error(), "no matches for kind"):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", k, err)
	}
	return u, nil
}
