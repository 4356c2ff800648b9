package deploy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hashbang/stack/internal/cluster"
)

// benchObjects are 200 objects in namespace ns that become ready without a
// node: the namespace, 80 ConfigMaps, 60 Services and 59 ServiceAccounts.
func benchObjects(ns string) []*unstructured.Unstructured {
	objs := []*unstructured.Unstructured{{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}}
	meta := func(name string) map[string]any {
		return map[string]any{"name": name, "namespace": ns, "labels": map[string]any{"app.kubernetes.io/part-of": "bench"}}
	}
	for i := range 80 {
		objs = append(objs, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(fmt.Sprintf("config-%02d", i)),
			"data": map[string]any{"index": fmt.Sprint(i), "greeting": "hello"}}})
	}
	for i := range 60 {
		objs = append(objs, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Service", "metadata": meta(fmt.Sprintf("svc-%02d", i)),
			"spec": map[string]any{"selector": map[string]any{"app": fmt.Sprint(i)}, "ports": []any{map[string]any{"name": "http", "port": int64(80), "targetPort": int64(8080)}}}}})
	}
	for i := range 59 {
		objs = append(objs, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(fmt.Sprintf("sa-%02d", i))}})
	}
	Sort(objs)
	return objs
}

// benchDeployer deploys to a fresh environment and state repo on the shared
// control plane, with the client settings stack deploy uses (from the
// kubeconfig).
func benchDeployer(b *testing.B, name string) *Deployer {
	cp := controlPlane(b)
	cfg, err := clientcmd.BuildConfigFromFlags("", cp.Kubeconfig)
	if err != nil {
		b.Fatal(err)
	}
	c, err := Connect(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	state := newState(b)
	env := &cluster.Environment{Name: name, Backend: cluster.Kubeconfig, Cluster: name, Registry: "registry.localhost:5000"}
	return &Deployer{Env: env, Cluster: c, State: state, By: Person{Name: "bench", Email: "bench@example.org"}}
}

var benchOpts = Options{Timeout: time.Minute, Interval: 100 * time.Millisecond}

// BenchmarkDeploy200 measures stack's deploy of 200 objects: the first
// deploy (all created) and a redeploy where nothing changed. Both include
// validation, readiness and the state repo commit.
func BenchmarkDeploy200(b *testing.B) {
	b.Run("first", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			name := fmt.Sprintf("bfirst-%d-%d", time.Now().UnixNano()%1e6, i)
			d := benchDeployer(b, name)
			r := &Rendered{Env: name, Objects: benchObjects(name)}
			b.StartTimer()
			if _, err := d.Deploy(context.Background(), r, benchOpts); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("noop", func(b *testing.B) {
		name := fmt.Sprintf("bnoop-%d", time.Now().UnixNano()%1e6)
		d := benchDeployer(b, name)
		r := &Rendered{Env: name, Objects: benchObjects(name)}
		if _, err := d.Deploy(context.Background(), r, benchOpts); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			res, err := d.Deploy(context.Background(), r, benchOpts)
			if err != nil {
				b.Fatal(err)
			}
			if res.Counts() != "200 unchanged" {
				b.Fatalf("no-op redeploy: %s", res.Counts())
			}
		}
	})
}

// BenchmarkDiff200 measures stack diff of 200 deployed objects against the
// state repo and the render.
func BenchmarkDiff200(b *testing.B) {
	name := fmt.Sprintf("bdiff-%d", time.Now().UnixNano()%1e6)
	d := benchDeployer(b, name)
	r := &Rendered{Env: name, Objects: benchObjects(name)}
	if _, err := d.Deploy(context.Background(), r, benchOpts); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		drift, err := d.Diff(context.Background(), r)
		if err != nil || len(drift.Objects) != 0 {
			b.Fatalf("diff: %+v %v", drift, err)
		}
	}
}

// benchManifest writes the 200 objects of namespace ns as one YAML file.
func benchManifest(b *testing.B, ns string) string {
	data, err := YAMLStream(benchObjects(ns))
	if err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(b.TempDir(), "objects.yaml")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

func benchKubectl(b *testing.B, ok func(error) bool, args ...string) {
	out, err := controlPlane(b).Kubectl(args...).CombinedOutput()
	if !ok(err) {
		b.Fatalf("kubectl %v: %v\n%s", args, err, out)
	}
}

func noError(err error) bool { return err == nil }

// BenchmarkKubectlApply200 is kubectl apply --server-side of the same 200
// objects, first and unchanged, for comparison (no validation pass, no
// readiness wait, no record).
func BenchmarkKubectlApply200(b *testing.B) {
	b.Run("first", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			f := benchManifest(b, fmt.Sprintf("kfirst-%d-%d", time.Now().UnixNano()%1e6, i))
			b.StartTimer()
			benchKubectl(b, noError, "apply", "--server-side", "--field-manager=bench", "-f", f)
		}
	})
	b.Run("noop", func(b *testing.B) {
		f := benchManifest(b, fmt.Sprintf("knoop-%d", time.Now().UnixNano()%1e6))
		benchKubectl(b, noError, "apply", "--server-side", "--field-manager=bench", "-f", f)
		for b.Loop() {
			benchKubectl(b, noError, "apply", "--server-side", "--field-manager=bench", "-f", f)
		}
	})
}

// BenchmarkKubectlDiff200 is kubectl diff --server-side of the same 200
// deployed objects.
func BenchmarkKubectlDiff200(b *testing.B) {
	f := benchManifest(b, fmt.Sprintf("kdiff-%d", time.Now().UnixNano()%1e6))
	benchKubectl(b, noError, "apply", "--server-side", "--field-manager=bench", "-f", f)
	for b.Loop() {
		benchKubectl(b, func(err error) bool {
			var ee *exec.ExitError
			return err == nil || (asExit(err, &ee) && ee.ExitCode() == 1)
		}, "diff", "--server-side", "--field-manager=bench", "-f", f)
	}
}

func asExit(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}

// BenchmarkRender renders this repository's development environment:
// "offline" as Render does (the check and a child process), "in-process"
// kustomize alone in this process, which is what the child costs over.
func BenchmarkRender(b *testing.B) {
	tr := mustTree(b, writeTree(b, repoFiles(b)))
	env := testEnv("development")
	b.Run("offline", func(b *testing.B) {
		for b.Loop() {
			if _, err := Render(tr, env); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("in-process", func(b *testing.B) {
		req, err := treeRequest(tr, []string{"/infra/development"})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if res, err := kustomizeTree(req); err != nil || res[0].Error != "" {
				b.Fatal(err, res)
			}
		}
	})
}
