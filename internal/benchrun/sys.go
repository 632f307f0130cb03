//go:build linux

package benchrun

import "github.com/ciedesktop/cie-desktop/internal/pcscdlock"

// The lock files, /proc readers and the pcscd watchdog are shared with
// internal/testbench through package pcscdlock, so that tests and the bench
// coordinate through the same files.
var (
	openLock      = pcscdlock.Open
	tryLock       = pcscdlock.TryLock
	lockWithin    = pcscdlock.LockWithin
	waitFor       = pcscdlock.WaitFor
	tcpListening  = pcscdlock.TCPListening
	processName   = pcscdlock.ProcessName
	readPID       = pcscdlock.ReadPID
	startWatchdog = pcscdlock.StartWatchdog
	lockDir       = pcscdlock.Dir
)
