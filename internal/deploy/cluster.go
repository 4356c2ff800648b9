package deploy

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// FieldManager is the name stack applies objects under; the API server
// records it as the owner of every field stack sets.
const FieldManager = "stack"

// quietOnce silences controller-runtime's logger, which would otherwise
// complain that nobody set it: stack reports errors itself.
var quietOnce sync.Once

// Cluster is a connection to an environment's Kubernetes API, made by
// Connect from what the environment's backend says (internal/cluster).
type Cluster struct {
	// Server is the API server's URL, for messages.
	Server string
	Client client.Client
	Mapper meta.RESTMapper
}

// Connect checks that the API server answers (within ten seconds) and
// returns a client for it.
func Connect(ctx context.Context, cfg *rest.Config) (*Cluster, error) {
	quietOnce.Do(func() { ctrllog.SetLogger(logr.Discard()) })
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 && cfg.RateLimiter == nil {
		// No client-side throttling, as kubectl: a deploy has at most
		// `concurrency` requests in flight, and the API server's priority
		// and fairness protects it from busier clients than that.
		cfg.QPS = -1
	}
	cfg.WarningHandlerWithContext = rest.NoWarnings{}
	probe := rest.CopyConfig(cfg)
	probe.Timeout = 10 * time.Second
	dc, err := discovery.NewDiscoveryClientForConfig(probe)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cfg.Host, err)
	}
	if _, err := dc.ServerVersion(); err != nil {
		return nil, fmt.Errorf("cluster %s is unreachable: %v: is it up, and is the kubeconfig right?", cfg.Host, err)
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cfg.Host, err)
	}
	c, err := client.New(cfg, client.Options{HTTPClient: hc, Mapper: mapper})
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cfg.Host, err)
	}
	return &Cluster{Server: cfg.Host, Client: c, Mapper: mapper}, nil
}

// namespaced tells whether objects of u's kind live in namespaces. A kind
// the cluster does not know yet may be defined by a CRD among crds; known
// is false then.
func (c *Cluster) namespaced(u *unstructured.Unstructured, crds []*unstructured.Unstructured) (namespaced, known bool, err error) {
	gvk := u.GroupVersionKind()
	m, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err == nil {
		return m.Scope.Name() == meta.RESTScopeNameNamespace, true, nil
	}
	if !meta.IsNoMatchError(err) {
		return false, false, fmt.Errorf("%s: %w", KeyOf(u), err)
	}
	for _, crd := range crds {
		group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
		if (schema.GroupKind{Group: group, Kind: kind}) == gvk.GroupKind() {
			scope, _, _ := unstructured.NestedString(crd.Object, "spec", "scope")
			return scope == "Namespaced", false, nil
		}
	}
	return false, false, fmt.Errorf("%s: the cluster has no kind %s in %s: add its CustomResourceDefinition, or fix apiVersion", KeyOf(u), gvk.Kind, gvk.GroupVersion())
}
