package registry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"go.yaml.in/yaml/v3"

	"github.com/hashbang/stack/internal/atomicfile"
)

// DevRegistryName is the name images deployed to the development cluster
// carry (the seed's registry.localhost:5000); the cluster's container
// runtime pulls them from the registry of `stack serve`.
const DevRegistryName = "registry.localhost:5000"

// maxRegistriesYAML bounds the size of a registries.yaml file.
const maxRegistriesYAML = 1 << 20

// A Mirror tells a cluster's container runtime to pull images named
// Name/... (a registry host[:port], or "*" for every registry) from
// Endpoints, tried in order.
type Mirror struct {
	Name      string
	Endpoints []string
}

// DevMirror is the mirror the development cluster needs: images named
// registry.localhost:5000/... come from the registry listening on addr.
func DevMirror(addr string) Mirror {
	return Mirror{Name: DevRegistryName, Endpoints: []string{"http://" + addr}}
}

// Check reports what is wrong with m, if anything. Plain http endpoints
// must be on loopback.
func (m Mirror) Check() error {
	if m.Name != "*" {
		if m.Name == "" || strings.ContainsAny(m.Name, "/\\\"") {
			return fmt.Errorf("mirror %q: name must be a registry HOST[:PORT] or *", m.Name)
		}
		if _, err := name.NewRegistry(m.Name, name.StrictValidation); err != nil {
			return fmt.Errorf("mirror %q: name must be a registry HOST[:PORT] or *: %v", m.Name, err)
		}
	}
	if len(m.Endpoints) == 0 {
		return fmt.Errorf("mirror %q: no endpoints: list at least one URL such as http://%s", m.Name, DefaultAddr)
	}
	for _, e := range m.Endpoints {
		if err := checkEndpoint(e); err != nil {
			return fmt.Errorf("mirror %q: %w", m.Name, err)
		}
	}
	return nil
}

func checkEndpoint(e string) error {
	u, err := url.Parse(e)
	if err != nil {
		return fmt.Errorf("endpoint %q: not a URL: give one starting with http:// or https://", e)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("endpoint %q: must start with http:// or https://", e)
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return fmt.Errorf("endpoint %q: must be SCHEME://HOST[:PORT] without user, query or fragment", e)
	case u.Path != "" && u.Path != "/":
		return fmt.Errorf("endpoint %q: must have no path", e)
	case strings.ContainsAny(e, "\"\\ \t\r\n"):
		return fmt.Errorf("endpoint %q: contains quotes, backslashes or white space", e)
	case u.Scheme == "http" && !hostIsLoopback(u.Host):
		return fmt.Errorf("endpoint %q: plain http is allowed only to loopback addresses: use https", e)
	}
	return nil
}

func checkMirrors(mirrors []Mirror) ([]Mirror, error) {
	if len(mirrors) == 0 {
		return nil, errors.New("no mirrors given")
	}
	seen := map[string]bool{}
	for _, m := range mirrors {
		if err := m.Check(); err != nil {
			return nil, err
		}
		if seen[m.Name] {
			return nil, fmt.Errorf("mirror %q given twice: merge its endpoints", m.Name)
		}
		seen[m.Name] = true
	}
	sorted := append([]Mirror(nil), mirrors...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	return sorted, nil
}

// registriesFile is the part of k3s's registries.yaml that stack writes
// and reads.
type registriesFile struct {
	Mirrors map[string]registriesMirror `yaml:"mirrors"`
}

type registriesMirror struct {
	Endpoint []string `yaml:"endpoint"`
}

const registriesHeader = `# Registry mirrors for k3s (/etc/rancher/k3s/registries.yaml), written by
# stack: images named MIRROR/... are pulled from its endpoints, in order.
`

// RegistriesYAML returns the k3s registries.yaml declaring mirrors.
func RegistriesYAML(mirrors ...Mirror) ([]byte, error) {
	ms, err := checkMirrors(mirrors)
	if err != nil {
		return nil, fmt.Errorf("registries.yaml: %w", err)
	}
	f := registriesFile{Mirrors: map[string]registriesMirror{}}
	for _, m := range ms {
		f.Mirrors[m.Name] = registriesMirror{Endpoint: m.Endpoints}
	}
	var b bytes.Buffer
	b.WriteString(registriesHeader)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("registries.yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("registries.yaml: %w", err)
	}
	return b.Bytes(), nil
}

// WriteMirrors writes the k3s registries.yaml declaring mirrors to path,
// replacing it whole.
func WriteMirrors(path string, mirrors ...Mirror) error {
	b, err := RegistriesYAML(mirrors...)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := atomicfile.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ParseRegistriesYAML reads the mirrors of a k3s registries.yaml. Only the
// mirrors.<name>.endpoint lists are understood; any other setting is an
// error rather than silently dropped.
func ParseRegistriesYAML(r io.Reader) ([]Mirror, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxRegistriesYAML+1))
	if err != nil {
		return nil, fmt.Errorf("registries.yaml: %w", err)
	}
	if len(data) > maxRegistriesYAML {
		return nil, fmt.Errorf("registries.yaml: larger than %d bytes", maxRegistriesYAML)
	}
	var f registriesFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("registries.yaml: empty: declare mirrors: {HOST: {endpoint: [URL]}}")
		}
		return nil, fmt.Errorf("registries.yaml: %v (stack understands only mirrors.HOST.endpoint)", oneLine(err))
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("registries.yaml: more than one YAML document: keep one")
	}
	var ms []Mirror
	for n, m := range f.Mirrors {
		ms = append(ms, Mirror{Name: n, Endpoints: m.Endpoint})
	}
	ms, err = checkMirrors(ms)
	if err != nil {
		return nil, fmt.Errorf("registries.yaml: %w", err)
	}
	return ms, nil
}

// ReadMirrors reads the mirrors of the k3s registries.yaml at path.
func ReadMirrors(path string) ([]Mirror, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ms, err := ParseRegistriesYAML(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ms, nil
}

// HostsTOML returns the containerd hosts.toml for m, the file containerd
// reads from <config_path>/<m.Name>/hosts.toml: pulls and resolves go to
// the endpoints in order.
func HostsTOML(m Mirror) ([]byte, error) {
	if err := m.Check(); err != nil {
		return nil, fmt.Errorf("hosts.toml: %w", err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# containerd registry host configuration, written by stack: images named\n# %s/... are pulled from the endpoints below, in order.\n", m.Name)
	fmt.Fprintf(&b, "server = %s\n", tomlString(strings.TrimSuffix(m.Endpoints[0], "/")))
	for _, e := range m.Endpoints {
		fmt.Fprintf(&b, "\n[host.%s]\n  capabilities = [\"pull\", \"resolve\"]\n", tomlString(strings.TrimSuffix(e, "/")))
	}
	return b.Bytes(), nil
}

// HostsDir is the directory under a containerd config_path holding the
// hosts.toml of the mirror called mirrorName.
func HostsDir(configPath, mirrorName string) string {
	if mirrorName == "*" {
		mirrorName = "_default"
	}
	return filepath.Join(configPath, mirrorName)
}

// WriteHosts writes a hosts.toml for each mirror under the containerd
// config_path directory configPath.
func WriteHosts(configPath string, mirrors ...Mirror) error {
	ms, err := checkMirrors(mirrors)
	if err != nil {
		return fmt.Errorf("hosts.toml: %w", err)
	}
	for _, m := range ms {
		b, err := HostsTOML(m)
		if err != nil {
			return err
		}
		dir := HostsDir(configPath, m.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("write hosts.toml for %s: %w", m.Name, err)
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, "hosts.toml"), b, 0o644); err != nil {
			return fmt.Errorf("write hosts.toml for %s: %w", m.Name, err)
		}
	}
	return nil
}

// tomlString quotes s as a TOML basic string. Check has already refused
// quotes, backslashes and control characters in endpoints; this escapes
// them anyway.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// oneLine folds a multi-line error message into one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
