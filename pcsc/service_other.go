//go:build !windows && !darwin

package pcsc

// ServiceName is the name of the operating system's PC/SC service as users
// and administrators know it: pcsc-lite's daemon.
const ServiceName = "pcscd"

// StartServiceHint says how to start the service.
const StartServiceHint = "start it (for example: sudo systemctl start pcscd.socket)"
