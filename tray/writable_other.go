//go:build !linux

package tray

// writable reports false: outside Linux the installer registers the
// module, and the browsers window changes nothing.
func writable(string) bool { return false }
