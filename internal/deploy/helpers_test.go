package deploy

import "github.com/opencontainers/go-digest"

func mustDigest(s string) digest.Digest {
	d, err := digest.Parse(s)
	if err != nil {
		panic(err)
	}
	return d
}
