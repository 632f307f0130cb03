// Package pcscdlock holds what the processes that plug virtual cards into
// one machine's pcscd share: the lock directory and flock helpers that
// count pcscd's users and reserve vpcd reader slots, the /proc readers used
// to see whether vpcd listens and whether pcscd lives, and the watchdog
// that stops a pcscd nobody uses once its starter is gone. The test bench
// (internal/testbench) and the benchmark runner (internal/benchrun) both
// use it, so they coordinate through the same files. Linux only.
package pcscdlock
