// Package digitalocean provisions DigitalOcean Kubernetes clusters from
// their declaration, the `digitalocean:` block of an environment.yaml
// (Spec), through DigitalOcean's own Go client, godo:
//
//	Spec ──Validate──▶ Client.Check (against the offered regions, versions, sizes)
//	     ──Client.Plan (diff vs the account, field by field)──▶ Plan
//	     ──Client.Apply (create, update in place, --replace)──▶ running cluster
//	     ──Client.Credentials──▶ Credentials (0600 under the data directory)
//	                         └──▶ Record (what exists, for the state repo)
//
// The token comes from DIGITALOCEAN_TOKEN or DIGITALOCEAN_TOKEN_FILE and
// the endpoint from DIGITALOCEAN_API_URL (the Terraform provider's names).
// Rate limits and server errors are retried, bounded (MaxAttempts,
// MaxWait). The package knows no environment, state repo or lock: package
// cluster composes it into a backend, package release records it.
package digitalocean
