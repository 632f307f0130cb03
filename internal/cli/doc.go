// Package cli implements the `cie` command: reader listing, card status,
// certificate export and PIN management through PC/SC, with messages a
// citizen understands and documented exit codes. cmd/cie only wires it to
// the process.
package cli
