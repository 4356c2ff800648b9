package node

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashbang/stack/internal/atomicfile"
)

// cert is one certificate the node needs, signed by its CA.
type cert struct {
	// Name is the file name: pki/<name>.crt and pki/<name>.key.
	Name string
	CN   string
	Orgs []string
	// Server and Client say which key usages it has.
	Server, Client bool
	DNS            []string
	IPs            []net.IP
}

// certs lists every certificate of the node given its address.
func (n *Node) certs() []cert {
	ip := net.ParseIP(n.Addr)
	svc := net.ParseIP(n.APIServiceIP)
	loop := net.ParseIP("127.0.0.1")
	return []cert{
		{Name: "etcd", CN: "etcd", Server: true, Client: true, DNS: []string{"localhost"}, IPs: []net.IP{loop}},
		{Name: "apiserver-etcd-client", CN: "kube-apiserver-etcd-client", Client: true},
		{Name: "apiserver", CN: "kube-apiserver", Server: true,
			DNS: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
			IPs: []net.IP{ip, svc, loop}},
		{Name: "apiserver-kubelet-client", CN: "kube-apiserver-kubelet-client", Orgs: []string{"kubeadm:cluster-admins"}, Client: true},
		{Name: "admin", CN: "stack-admin", Orgs: []string{"system:masters"}, Client: true},
		{Name: "controller-manager", CN: "system:kube-controller-manager", Client: true},
		{Name: "scheduler", CN: "system:kube-scheduler", Client: true},
		{Name: "kubelet", CN: "system:node:" + n.Name, Orgs: []string{"system:nodes"}, Client: true},
		{Name: "kubelet-server", CN: n.Name, Server: true, DNS: []string{n.Name, "localhost"}, IPs: []net.IP{ip, loop}},
		{Name: "kube-proxy", CN: "system:kube-proxy", Client: true},
	}
}

// certValidity is how long the node's certificates are valid: a development
// cluster is re-created long before they expire.
const certValidity = 5 * 365 * 24 * time.Hour

// ensurePKI creates the CA, the service account key and every certificate
// that does not exist yet. Keys are written 0600, certificates 0644.
func (n *Node) ensurePKI() error {
	dir := n.path("pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caCert, caKey, err := loadOrCreateCA(dir, n.Cluster)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sa.key")); errors.Is(err, os.ErrNotExist) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			return err
		}
		if err := writePEM(filepath.Join(dir, "sa.pub"), "PUBLIC KEY", pub, 0o644); err != nil {
			return err
		}
		if err := writeKey(filepath.Join(dir, "sa.key"), k); err != nil {
			return err
		}
	}
	for _, c := range n.certs() {
		if _, err := os.Stat(filepath.Join(dir, c.Name+".crt")); err == nil {
			continue
		}
		if err := issue(dir, c, caCert, caKey); err != nil {
			return fmt.Errorf("pki: %s: %w", c.Name, err)
		}
	}
	return nil
}

func loadOrCreateCA(dir, cluster string) (*x509.Certificate, crypto.Signer, error) {
	crtPath, keyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if crtPEM, err := os.ReadFile(crtPath); err == nil {
		keyPEM, err := os.ReadFile(keyPath)
		if err != nil {
			return nil, nil, err
		}
		cb, _ := pem.Decode(crtPEM)
		kb, _ := pem.Decode(keyPEM)
		if cb == nil || kb == nil {
			return nil, nil, fmt.Errorf("%s or %s is not PEM: remove %s to start over (stack down --purge)", crtPath, keyPath, dir)
		}
		c, err := x509.ParseCertificate(cb.Bytes)
		if err != nil {
			return nil, nil, err
		}
		k, err := x509.ParseECPrivateKey(kb.Bytes)
		if err != nil {
			return nil, nil, err
		}
		return c, k, nil
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "stack " + cluster + " CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(certValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, nil, err
	}
	if err := writeKey(keyPath, k); err != nil {
		return nil, nil, err
	}
	if err := writePEM(crtPath, "CERTIFICATE", der, 0o644); err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return c, k, err
}

func issue(dir string, c cert, ca *x509.Certificate, caKey crypto.Signer) error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: c.CN, Organization: c.Orgs},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		DNSNames:     c.DNS,
		IPAddresses:  c.IPs,
	}
	if c.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if c.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		return err
	}
	// The key first: a certificate without its key would be taken as done.
	if err := writeKey(filepath.Join(dir, c.Name+".key"), k); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, c.Name+".crt"), "CERTIFICATE", der, 0o644)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n
}

func writeKey(path string, k *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return err
	}
	return writePEM(path, "EC PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return atomicfile.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}
