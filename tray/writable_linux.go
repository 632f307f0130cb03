package tray

import "syscall"

// writable reports whether the user may write p (a file or a directory):
// access(2) with W_OK, which also knows about read-only mounts.
func writable(p string) bool {
	const wOK = 2 // W_OK of unistd.h
	return syscall.Access(p, wOK) == nil
}
