package source

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Dsc is what a Debian source control file (.dsc) says of its source
// package: its name, version and format, and the files that make it, each
// pinned by the sha256 and size of its Checksums-Sha256 field.
type Dsc struct {
	Source  string
	Version string
	Format  string
	Files   []DscFile
}

// DscFile is one file a .dsc names.
type DscFile struct {
	Name string
	Size int64
	// SHA256 is the file's sha256, in lower-case hex.
	SHA256 string
}

// maxDscSize bounds a .dsc: real ones are a few kilobytes.
const maxDscSize = 1 << 20

// ParseDsc parses a .dsc, clear-signed or not. The OpenPGP signature is not
// checked: the .dsc is trusted because its sha256 is pinned in
// sources.yaml. Every file must be listed in Checksums-Sha256 with a plain
// file name, a size and a sha256; a .dsc without them is refused.
func ParseDsc(data []byte) (*Dsc, error) {
	if len(data) > maxDscSize {
		return nil, fmt.Errorf("not a .dsc: %d bytes, more than %d", len(data), maxDscSize)
	}
	body, err := dscBody(data)
	if err != nil {
		return nil, err
	}
	fields := map[string]string{}
	last := ""
	for i, line := range strings.Split(body, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.TrimSpace(line) == "":
			if len(fields) > 0 {
				// One paragraph: what follows is not part of it.
				goto done
			}
		case line[0] == ' ' || line[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf(".dsc line %d: continuation line before any field", i+1)
			}
			fields[last] += "\n" + strings.TrimSpace(line)
		case line[0] == '#':
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok || k == "" || strings.ContainsAny(k, " \t") {
				return nil, fmt.Errorf(".dsc line %d: want `Field: value`, got %q", i+1, shorten(line))
			}
			if _, dup := fields[k]; dup {
				return nil, fmt.Errorf(".dsc line %d: field %s given twice", i+1, k)
			}
			fields[k] = strings.TrimSpace(v)
			last = k
		}
	}
done:
	d := &Dsc{Source: fields["Source"], Version: fields["Version"], Format: fields["Format"]}
	switch {
	case d.Source == "" || !debNameRE.MatchString(d.Source):
		return nil, fmt.Errorf(".dsc: Source %q is not a Debian source package name", shorten(d.Source))
	case d.Version == "" || !debVerRE.MatchString(d.Version):
		return nil, fmt.Errorf(".dsc: Version %q is not a Debian version", shorten(d.Version))
	case d.Format == "":
		return nil, errors.New(".dsc: no Format field")
	}
	sums, ok := fields["Checksums-Sha256"]
	if !ok {
		return nil, errors.New(".dsc: no Checksums-Sha256 field: its files cannot be verified")
	}
	seen := map[string]bool{}
	for _, l := range strings.Split(sums, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		f := strings.Fields(l)
		if len(f) != 3 {
			return nil, fmt.Errorf(".dsc: Checksums-Sha256 line %q: want `sha256 size name`", shorten(l))
		}
		sum, sizeText, name := f[0], f[1], f[2]
		if len(sum) != 64 || !hexRE.MatchString(sum) {
			return nil, fmt.Errorf(".dsc: Checksums-Sha256 of %s: %q is not a lower-case sha256", shorten(name), shorten(sum))
		}
		size, err := strconv.ParseInt(sizeText, 10, 64)
		if err != nil || size < 0 {
			return nil, fmt.Errorf(".dsc: Checksums-Sha256 of %s: bad size %q", shorten(name), shorten(sizeText))
		}
		if !plainFileName(name) {
			return nil, fmt.Errorf(".dsc: Checksums-Sha256 names %q, not a plain file name", shorten(name))
		}
		if seen[name] {
			return nil, fmt.Errorf(".dsc: Checksums-Sha256 lists %s twice", name)
		}
		seen[name] = true
		d.Files = append(d.Files, DscFile{Name: name, Size: size, SHA256: sum})
	}
	if len(d.Files) == 0 {
		return nil, errors.New(".dsc: Checksums-Sha256 lists no files")
	}
	return d, nil
}

// dscBody strips the clear-signature armour from a .dsc, if any.
func dscBody(data []byte) (string, error) {
	const head = "-----BEGIN PGP SIGNED MESSAGE-----"
	s := string(data)
	if bytes.IndexByte(data, 0) >= 0 {
		return "", errors.New("not a .dsc: it holds NUL bytes")
	}
	if !strings.HasPrefix(strings.TrimLeft(s, "\r\n"), head) {
		return s, nil
	}
	// Armour headers (Hash: ...) end at the first empty line.
	_, rest, ok := strings.Cut(s, "\n\n")
	if !ok {
		return "", errors.New(".dsc: signed message without a body")
	}
	body, _, ok := strings.Cut(rest, "\n-----BEGIN PGP SIGNATURE-----")
	if !ok {
		return "", errors.New(".dsc: signed message without its signature block")
	}
	// Dash-escaped lines ("- -----...") lose their escape.
	lines := strings.Split(body, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "- ")
	}
	return strings.Join(lines, "\n"), nil
}

// plainFileName reports whether name is a file name without directories.
func plainFileName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00\\")
}

func shorten(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
