package node

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashbang/stack/internal/ui"
)

// DNS returns the manifests of the cluster DNS: CoreDNS (image, pinned by
// digest, from our registry) answering for the cluster domain from the API
// and forwarding other names to the host's nameservers, behind the kube-dns
// Service at DNSIP. It runs unprivileged on port 1053, read-only, with every
// capability dropped.
func (n *Node) DNS(image string) string {
	forward := ""
	if data, err := os.ReadFile(n.path("etc", "resolv.conf")); err == nil && strings.Contains(string(data), "nameserver") {
		forward = "        forward . /etc/resolv.conf\n"
	}
	// The first object lets the API server use the kubelet's API (exec,
	// logs, port-forward): the kubelet authorizes its client certificate's
	// user through the API server, whose RBAC must allow it.
	return `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: stack:kube-apiserver-kubelet-client
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:kubelet-api-admin
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: kube-apiserver-kubelet-client
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: coredns
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:coredns
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:coredns
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:coredns
subjects:
- kind: ServiceAccount
  name: coredns
  namespace: kube-system
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: coredns
  namespace: kube-system
data:
  Corefile: |
    .:1053 {
        errors
        health :8080
        ready :8181
        kubernetes ` + n.Domain + ` in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
        }
` + forward + `        cache 30
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  replicas: 1
  selector:
    matchLabels: {k8s-app: kube-dns}
  template:
    metadata:
      labels: {k8s-app: kube-dns}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      priorityClassName: system-cluster-critical
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: coredns
        image: ` + image + `
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 1053, protocol: UDP}
        - {name: dns-tcp, containerPort: 1053, protocol: TCP}
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
          periodSeconds: 2
        livenessProbe:
          httpGet: {path: /health, port: 8080}
          periodSeconds: 10
        resources:
          requests: {cpu: 10m, memory: 32Mi}
          limits: {memory: 128Mi}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        volumeMounts:
        - {name: config, mountPath: /etc/coredns, readOnly: true}
      volumes:
      - name: config
        configMap: {name: coredns}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  clusterIP: ` + n.DNSIP + `
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
`
}

// ApplyDNS applies the cluster DNS and waits until it is available.
func (n *Node) ApplyDNS(ctx context.Context, p *ui.Progress, image string) error {
	step := p.Start("cluster DNS (CoreDNS at %s)", n.DNSIP)
	if _, err := n.Kubectl(ctx, strings.NewReader(n.DNS(image)), "apply", "--server-side", "--field-manager=stack", "--force-conflicts", "-f", "-"); err != nil {
		return step.Done(err)
	}
	_, err := n.Kubectl(ctx, nil, "-n", "kube-system", "rollout", "status", "deployment/coredns", fmt.Sprintf("--timeout=%s", 3*time.Minute))
	if err != nil {
		err = fmt.Errorf("%w (kubectl -n kube-system describe pod -l k8s-app=kube-dns; logs: %s)", err, n.LogPath("kubelet"))
	}
	return step.Done(err)
}
