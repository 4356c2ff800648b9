package digitalocean

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/digitalocean/godo"
	"k8s.io/client-go/rest"

	"github.com/hashbang/stack/internal/atomicfile"
)

// CredentialLifetime is how long the credentials Apply fetches are valid;
// Config renews them once less than a quarter of that is left.
const CredentialLifetime = 24 * time.Hour

// maxCredentialsSize bounds a credentials file.
const maxCredentialsSize = 1 << 20

// Credentials reach a cluster's API server. They are kept in the data
// directory with mode 0600, never in the repository, never logged.
type Credentials struct {
	ClusterID  string    `json:"cluster_id"`
	Server     string    `json:"server"`
	CA         []byte    `json:"certificate_authority_data"`
	ClientCert []byte    `json:"client_certificate_data,omitempty"`
	ClientKey  []byte    `json:"client_key_data,omitempty"`
	Token      string    `json:"token,omitempty"`
	IssuedAt   time.Time `json:"issued_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// Credentials fetches new credentials of cluster id, valid for
// CredentialLifetime.
func (c *Client) Credentials(ctx context.Context, id string) (*Credentials, error) {
	secs := int(CredentialLifetime / time.Second)
	now := time.Now()
	cr, _, err := c.api.Kubernetes.GetCredentials(ctx, id, &godo.KubernetesClusterCredentialsGetRequest{ExpirySeconds: &secs})
	if err != nil {
		return nil, apiError("fetch the credentials of cluster "+id, err)
	}
	out := &Credentials{
		ClusterID: id, Server: cr.Server, CA: cr.CertificateAuthorityData,
		ClientCert: cr.ClientCertificateData, ClientKey: cr.ClientKeyData, Token: cr.Token,
		IssuedAt: now, ExpiresAt: cr.ExpiresAt,
	}
	return out, out.check()
}

func (cr *Credentials) check() error {
	switch {
	case cr.ClusterID == "" || cr.Server == "":
		return errors.New("credentials name no cluster or server")
	case cr.Token == "" && (len(cr.ClientCert) == 0 || len(cr.ClientKey) == 0):
		return errors.New("credentials hold neither a token nor a client certificate and key")
	case cr.ExpiresAt.IsZero():
		return errors.New("credentials have no expiry")
	}
	return nil
}

// Fresh reports whether the credentials are good at now for a while yet:
// more than a quarter of their lifetime (and more than five minutes) left.
func (cr *Credentials) Fresh(now time.Time) bool {
	left := cr.ExpiresAt.Sub(now)
	return left > 5*time.Minute && left > cr.ExpiresAt.Sub(cr.IssuedAt)/4
}

// RESTConfig is how client-go reaches the cluster with them.
func (cr *Credentials) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:        cr.Server,
		BearerToken: cr.Token,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: cr.CA, CertData: cr.ClientCert, KeyData: cr.ClientKey,
		},
	}
}

// Save writes the credentials to file, mode 0600, its directory 0700, all
// at once.
func (cr *Credentials) Save(file string) error {
	data, err := json.MarshalIndent(cr, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(file, append(data, '\n'), 0o600)
}

// LoadCredentials reads credentials Save wrote. A missing file is
// os.ErrNotExist; a file others may read is refused.
func LoadCredentials(file string) (*Credentials, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("credentials %s are not a regular file: delete it and run `stack infra apply` again", file)
	case fi.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("credentials %s may be read by others (mode %04o): chmod 600 it", file, fi.Mode().Perm())
	case fi.Size() > maxCredentialsSize:
		return nil, fmt.Errorf("credentials %s are larger than %d bytes: delete it and run `stack infra apply` again", file, maxCredentialsSize)
	}
	data := make([]byte, fi.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, err
	}
	return ParseCredentials(file, data)
}

// ParseCredentials decodes a credentials file's content.
func ParseCredentials(file string, data []byte) (*Credentials, error) {
	var cr Credentials
	if err := json.Unmarshal(data, &cr); err != nil {
		return nil, fmt.Errorf("credentials %s: %v: delete it and run `stack infra apply` again", file, err)
	}
	if err := cr.check(); err != nil {
		return nil, fmt.Errorf("credentials %s: %v: delete it and run `stack infra apply` again", file, err)
	}
	return &cr, nil
}
